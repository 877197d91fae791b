"""How digests are produced fast and sent exactly once, beneath two plain calls:
`send.send_due` (send everything due) and `render.render_digest` (one digest's email).

  send.py      the send pipeline: lease pending digests in chunks, render them ahead
               while one SMTP connection sends, settle every outcome; the relay breaker
  sent_log.py  the recording thread: `sent` committed right behind each acceptance
  workers.py   worker processes that load and render chunks, and plan, for large runs
  render.py    a digest's email from its view, and a chunk's (what a worker does)
  bodies.py    the body cache: a body rendered once per distinct content, keyed by it

What a digest holds is decided above this package (alerts.digests); nothing here
changes it: a cached body gives the bytes a fresh render gives.
"""
