"""Load the model at startup; if that fails, stop the server with one line, not a traceback."""

import asyncio
import gc
import logging
import sys
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager, suppress
from typing import Final

from fastapi import FastAPI
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.core.config import Settings
from app.core.dataplane import PinnedArtifact, ServedModel
from app.core.monitoring import Watch, keep_fresh
from app.observability import prometheus as telemetry
from app.record.config import RecordConfig
from app.record.recorder import Recorder
from app.record.retention import Retention
from model.artifact import ArtifactError

logger = logging.getLogger("app.startup")

# Container allocations between two collections of the youngest generation (Python's default is
# 700). A /predict/batch request of 1,000 instances allocates several thousand, nearly all freed
# by reference counting; at 700 its survivors were promoted and rescanned so often that
# collecting took about 30% of the request (5.9 -> 4.1 ms in process with this threshold).
GC_YOUNG_THRESHOLD: Final = 10_000

Lifespan = Callable[[FastAPI], AbstractAsyncContextManager[None]]


class StartupError(RuntimeError):
    """The service cannot start; the message is one line naming the cause."""


def make_lifespan(settings: Settings, pinned: PinnedArtifact | None = None) -> Lifespan:
    """Load the model from `pinned` (what `python -m app` verified), else from MODEL_PATH."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        try:
            if pinned is not None:
                model = ServedModel.from_pinned(pinned, settings.default_confidence)
            else:
                model = ServedModel.load(settings.model_path, settings.default_confidence)
        except ArtifactError as exc:
            raise StartupError(f"cannot load the model: {exc}") from None
        found, pin = model.artifact.content_sha256, settings.model_sha256
        if pin is not None and found != pin:  # checked by python -m app already; not by uvicorn
            raise StartupError(
                f"cannot load the model: {settings.model_path}: content hash {found} is not the"
                f" one MODEL_SHA256 pins ({pin})"
            )
        app.state.model = model
        telemetry.record_model(model.version)
        app.state.recorder = start_recorder(settings)
        retention = start_retention(settings) if app.state.recorder is not None else None
        refresh = None
        if app.state.recorder is not None:
            app.state.watch = Watch(
                model,
                record_config(settings),
                settings.callers(),
                settings.monitoring_window,
                settings.drift_window,
                settings.monitoring_refresh_seconds,
            )
            refresh = asyncio.create_task(keep_fresh(app.state.watch), name="monitoring-refresh")
        tune_garbage_collection()
        source = settings.model_path if pinned is None else f"{pinned.source} (pinned at startup)"
        logger.info("serving model %s from %s", model.version, source)
        try:
            async with telemetry.process_sampler():
                yield
        finally:
            if refresh is not None:
                refresh.cancel()
            if retention is not None:
                retention.stop()
            if app.state.recorder is not None:
                app.state.recorder.close()

    return lifespan


def record_config(settings: Settings) -> RecordConfig:
    url = settings.database_url
    return RecordConfig(settings.record_dir, None if url is None else url.get_secret_value())


def start_recorder(settings: Settings) -> Recorder | None:
    """This process's writer of the record, started (None with RECORD off). A store that cannot
    be reached does not stop the start: predictions are refused until it can be."""
    if not settings.record:
        logger.warning("the record of predictions is OFF (RECORD=false): answers are not kept")
        return None
    config = record_config(settings)
    recorder = Recorder.from_config(
        config, log_level=settings.log_level, log_format=settings.log_format
    )
    healthy, reason = recorder.start()
    if healthy:
        logger.info("recording every prediction in %s", config.describe())
    else:
        logger.error("the record in %s cannot be written (%s)", config.describe(), reason)
    return recorder


class RetentionTask:
    """This worker's periodic prune of the record (app/record/retention.py)."""

    def __init__(self, retention: Retention) -> None:
        self.retention = retention
        self.task = asyncio.create_task(retention.run(), name="record-retention")

    def stop(self) -> None:
        self.retention.stop()
        self.task.cancel()


def start_retention(settings: Settings) -> RetentionTask | None:
    """Prune records older than RECORD_RETENTION_DAYS now and periodically (None when unset)."""
    days = settings.record_retention_days
    if days is None:
        return None
    retention = Retention(record_config(settings), days, settings.record_prune_interval_seconds)
    logger.info(
        "record retention: records answered more than %g day(s) ago are deleted every %gs",
        days,
        retention.interval,
    )
    return RetentionTask(retention)


def tune_garbage_collection() -> None:
    """Collect the young generation less often, and never rescan what startup built (modules,
    the app, the model: they live as long as the process) in a full collection."""
    gc.collect()
    gc.freeze()
    _, older, oldest = gc.get_threshold()
    gc.set_threshold(GC_YOUNG_THRESHOLD, older, oldest)


class OneLineStartupErrors:
    """Pure ASGI middleware: report a StartupError to the server as its one-line message.

    Starlette reports a failed lifespan with the whole traceback as the message, which uvicorn
    logs; for a StartupError the message alone says everything, so it replaces the traceback.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "lifespan":
            await self.app(scope, receive, send)
            return

        async def send_one_line(message: Message) -> None:
            if message["type"] == "lifespan.startup.failed":
                # Starlette sends this while handling the exception the lifespan raised.
                error = sys.exc_info()[1]
                if isinstance(error, StartupError):
                    message = {**message, "message": str(error)}
            await send(message)

        with suppress(StartupError):  # reported above; the server exits as startup failed
            await self.app(scope, receive, send_one_line)
