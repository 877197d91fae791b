"""Digests: when each alert is due, what its email holds, and sending it exactly once."""
