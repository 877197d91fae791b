"""The item API's `client` and the seeded `target`, as test_api.py defines them, for
every module here."""

from tests.test_items.test_api import client, target

__all__ = ["client", "target"]
