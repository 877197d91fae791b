"""Stored upstream items, their links to targets and the events subscribers hear about."""
