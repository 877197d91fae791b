from tests.test_subscriptions.harness import harness

__all__ = ["harness"]
