"""Source adapters: each fetches and parses one upstream, nothing else."""
