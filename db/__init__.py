"""Persistence: models, column types, the stored status values (`statuses`), the one
lease that shares rows between processes (`leases`), engine and session factories,
migrations.

`db` imports nothing from `alerts` or `scheduler`; they depend on it, never the reverse.
"""
