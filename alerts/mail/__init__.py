"""Outgoing mail: one small interface, an SMTP implementation and a local mailbox."""
