"""Digests: when each alert is due, what its email holds, and how it is sent exactly once.

What a digest holds, in plain code:
  schedule.py    when an alert is due (pure functions of its schedule and a moment)
  planning.py    which digests are due at a moment and which events each delivers
  compose.py     what a digest shows and how it reads: order, wording, subject, the views
  views.py       from a chunk of digests' database rows to their views
  message.py     a digest's email: its links, what its body shows, its headers
  repository.py  the digest queries (nothing here commits)
  service.py, api.py, schemas.py   an alert's preview and the operator's list of digests

How it is produced fast (delivery/): worker processes, the body cache, pipelined sending
and the recording thread, beneath `send_due` and `render_digest`.
"""
