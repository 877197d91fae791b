"""Polling the sources: which (source, target) is due and when it is next (`due`), the
claim on each state, cursors, and the ingest of what the adapters return."""
