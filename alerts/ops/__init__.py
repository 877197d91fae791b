"""Operating the service: health, readiness, metrics, logging."""
