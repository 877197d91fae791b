"""Polling the sources: leases, cursors, backoff and the ingest of what they return."""
