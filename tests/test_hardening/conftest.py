from tests.test_subscriptions.harness import harness, isolated_harness

__all__ = ["harness", "isolated_harness"]
