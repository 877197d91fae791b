"""Outgoing mail: one small interface with an SMTP implementation and a local mailbox,
the breaker for a relay that refuses everything, and the outbox, the whole service's
queue of transactional mail (confirmations, API tokens) that is never lost."""
