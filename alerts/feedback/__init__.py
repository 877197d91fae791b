"""Readers' verdicts on what a digest showed them.

Each digest item carries a signed "not relevant" link for its reader. The verdict is
recorded per (item, target, reader) and changes nothing for anyone else: it is evidence
for judging the match rule, listed to the operator by the admin API and exported by
`alerts feedback export` as evaluation cases that `make eval` takes in.
"""
