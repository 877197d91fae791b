from tests.test_items.test_api import client
from tests.test_subscriptions.harness import harness

__all__ = ["client", "harness"]
