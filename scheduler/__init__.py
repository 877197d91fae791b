"""WHEN things run: the APScheduler setup and thin jobs, nothing else.

The database is the schedule (`SourceState.next_poll_at`, digest slots, outbox rows)
and the services' leases keep several schedulers from doing the same work twice; this
package is only the metronome that asks the services, every tick, to do what is due.
Only `alerts/cli.py` (the composition root) imports it.
"""
