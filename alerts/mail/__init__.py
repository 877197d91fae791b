"""Outgoing mail: how every email is written and how it leaves.

  message.py  the one message builder (multipart/alternative, UTF-8, CRLF), with the
              fast path for bodies rendered once and filled per message
  base.py     the Mailer interface, its typed failures and the header policy
  smtp.py     SMTP: one reused connection per batch, pipelined; SMTPUTF8, else IDNA
  mailbox.py  the local mailbox of development (.eml files shown at /dev/mailbox)
  breaker.py  the breaker for a relay that refuses everything
  factory.py  the Mailer the settings ask for
  outbox.py   the outbox: the whole service's queue of transactional mail (confirmations,
              API tokens, notices), written in the asking transaction and never lost
"""
