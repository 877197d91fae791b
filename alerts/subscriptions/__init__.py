"""Subscribers and their alerts: sign-up with double opt-in, management, unsubscribe."""
