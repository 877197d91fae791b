"""Where a target stands: its drug pipeline, its weekly activity and its latest items.

Everything is derived from what the service already stores for the target (matched
trials with their phases, statuses and interventions; matched publications and news;
trial events), so the page, `GET /api/v1/targets/{slug}/progress` and the Atom feed
need no extra upstream request.

- `pipeline`: which drugs the target's trials name and how far each has gone.
- `timeline`: matched items per week, by kind, and the chart drawn from them.
- `service`: reads the database and assembles both for one target.
"""
