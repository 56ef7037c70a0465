"""The durable record of predictions (issue 23): every answered request is committed to a store
(SQLite by default, PostgreSQL with DATABASE_URL) before its answer is sent, in a per-writer hash
chain that `python -m app audit verify` checks.

The service's side: `Recorder` (app/record/recorder.py; its writer process: app/record/writer.py)
and `PredictionRecord` (app/record/entry.py); the operator's side: app/record/audit.py. Nothing
here imports the web layer. The names below are loaded on first use, so that the audit CLI does
not create the writer's Prometheus metrics (files in PROMETHEUS_MULTIPROC_DIR when that is set).
"""

import importlib
from typing import Any, Final

_WHERE: Final = {
    "PredictionRecord": "app.record.entry",
    "RecordError": "app.record.entry",
    "valid_case_ref": "app.record.entry",
    "RecordConfig": "app.record.config",
    "RecordConfigError": "app.record.config",
    "SqlStore": "app.record.store",
    "StoreError": "app.record.store",
    "open_store": "app.record.store",
    "Recorder": "app.record.recorder",
    "RecordUnavailable": "app.record.recorder",
}
__all__ = sorted(_WHERE)


def __getattr__(name: str) -> Any:
    if name not in _WHERE:
        raise AttributeError(f"module 'app.record' has no attribute {name!r}")
    return getattr(importlib.import_module(_WHERE[name]), name)
