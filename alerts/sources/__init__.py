"""Source adapters: each fetches and parses one upstream, nothing else.

The package owns everything between "poll this target" and a list of parsed items with
the cursor to resume from: the one adapter interface (`base.Source`, its value types and
the two errors, `SourceError` permanent and `RetryLater` transient), the registry that
maps a `SourceName` to its adapter (`registry`), the shared HTTP client with its rate
limits, retries, body-size limits and request counting (`http`), URL rules (`urls`:
credentials, safe links and redirects), safe XML (`xml`), and the adapters themselves:
PubMed E-utilities (`pubmed`), ClinicalTrials.gov API v2 (`ctgov`, with the trial fields
whose change is an update in `trial_fields`) and RSS/Atom feeds (`rss`; parsing in
`feedparse`, with our own reader for RSS 2.0 and Atom 1.0 in `feedxml`).

It owns no storage and sends no mail: an adapter never touches the database (a test
holds that), so the poller, backfill and API previews use the same adapters. What is new,
what matches a target and who is told live in `polling/`, `matching/` and `digests/`.
"""
