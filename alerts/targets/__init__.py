"""The target catalogue: what people subscribe to, and how each source searches it."""
