"""A real Prometheus, as the observability tests start it; a real PostgreSQL, as the record's."""

from tests.system.observability.test_prometheus import prometheus
from tests.system.record.conftest import pg_server

__all__ = ["pg_server", "prometheus"]
