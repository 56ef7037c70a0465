"""A real Prometheus, as the observability tests start it."""

from tests.system.observability.test_prometheus import prometheus

__all__ = ["prometheus"]
