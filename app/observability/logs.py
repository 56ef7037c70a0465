"""Logging setup: the service's logs ("app.*") on stderr, as text lines or JSON lines.

LOG_FORMAT=text (the default) keeps the `time LEVEL logger: message` lines. LOG_FORMAT=json writes
one JSON object a line, uvicorn's own lines included, with python-json-logger's formatter: the
time in RFC 3339 UTC, level, logger, message, the worker's pid and, during a request, its id;
the access log adds method, route, status, duration_ms and client. No body, header or query
string is ever logged.
"""

import copy
import logging
import sys
from datetime import UTC, datetime
from typing import Any, Final

from pythonjsonlogger.json import JsonFormatter

from app.core.request_id import current_request_id

LOGGER_NAME: Final = "app"
HANDLER_NAME: Final = "malignancy-predictor"
FORMAT: Final = "%(asctime)s %(levelname)s %(name)s: %(message)s"
JSON_FIELDS: Final = "%(levelname)s %(name)s %(message)s"
JSON_RENAMED: Final = {"levelname": "level", "name": "logger"}
UVICORN_LOGGERS: Final = ("uvicorn", "uvicorn.error", "uvicorn.access")
HANDLER_CLASS: Final = "app.observability.logs.LossCountingStreamHandler"


class LossCountingStreamHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """logging's StreamHandler, counting the lines it could not write instead of printing a
    traceback for each to the stream that just failed (a closed pipe, a full disk)."""

    def handleError(self, record: logging.LogRecord) -> None:
        lost_log_line()


def lost_log_line() -> None:
    """Count a log line that could not be written (predictor_log_lines_lost_total)."""
    # Imported here: this module is imported before PROMETHEUS_MULTIPROC_DIR is set, and
    # prometheus_client reads it when first imported (app/observability/metrics_dir.py).
    from app.observability import prometheus as telemetry

    telemetry.record_lost_log_line()


class JsonLines(JsonFormatter):
    """python-json-logger's formatter with the fields above, the time first."""

    def __init__(self) -> None:
        super().__init__(JSON_FIELDS, rename_fields=JSON_RENAMED)

    def add_fields(
        self, log_data: dict[str, Any], record: logging.LogRecord, message_dict: dict[str, Any]
    ) -> None:
        log_data["time"] = rfc3339_utc(record.created)
        super().add_fields(log_data, record, message_dict)
        log_data["pid"] = record.process
        log_data.setdefault("request_id", current_request_id())


def rfc3339_utc(timestamp: float) -> str:
    """`2026-12-01T20:41:44.123Z`."""
    moment = datetime.fromtimestamp(timestamp, UTC)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def formatter(log_format: str) -> logging.Formatter:
    return JsonLines() if log_format == "json" else logging.Formatter(FORMAT)


def configure_logging(level: str, log_format: str = "text") -> None:
    """Send the service's logs ("app.*") to stderr at `level` in `log_format`; silence uvicorn's
    access log, which the Observed middleware replaces. Safe to call more than once."""
    logger = logging.getLogger(LOGGER_NAME)
    logger.setLevel(level.upper())
    logger.propagate = False
    handler = next((h for h in logger.handlers if h.name == HANDLER_NAME), None)
    if handler is None:
        handler = LossCountingStreamHandler(sys.stderr)
        handler.name = HANDLER_NAME
        logger.addHandler(handler)
    handler.setFormatter(formatter(log_format))
    logging.getLogger("uvicorn.access").setLevel(logging.WARNING)


def uvicorn_log_config(log_format: str) -> dict[str, Any]:
    """uvicorn's `log_config`: its own for text, the same loggers as JSON lines for json; either
    way with handlers that count the lines they cannot write."""
    if log_format != "json":
        # Imported here: the record's writer process configures its logging with this module,
        # serves no HTTP, and each worker's start waits for it (uvicorn's import: ~25 ms).
        from uvicorn.config import LOGGING_CONFIG

        config = copy.deepcopy(LOGGING_CONFIG)
        for handler in config["handlers"].values():
            handler["class"] = HANDLER_CLASS
        return config
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"json": {"()": JsonLines}},
        "handlers": {
            "stderr": {
                "class": HANDLER_CLASS,
                "formatter": "json",
                "stream": "ext://sys.stderr",
            }
        },
        "loggers": {
            name: {"handlers": ["stderr"], "level": "INFO", "propagate": False}
            for name in UVICORN_LOGGERS
        },
    }
