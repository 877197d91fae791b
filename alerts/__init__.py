"""Target Alerts: email digests of what is new about drug-discovery targets."""

__version__ = "0.1.0"
