"""Persistence: models, column types, engine and session factories, migrations.

`db` imports nothing from `alerts` or `scheduler`; they depend on it, never the reverse.
"""
