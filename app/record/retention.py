"""Retention: the service deletes records older than RECORD_RETENTION_DAYS by itself.

`Retention.run()` is a task of each worker's event loop: at start, then every `interval`
seconds, it runs `SqlStore.prune` in a thread (never on the request path) on a connection of
its own, in batches of `BATCH` records per writer, each its own short transaction: on SQLite a
prune holds the write lock, which the writer's commits wait for. Prunes run one at a time
whichever worker or `python -m app audit prune` starts them (SqlStore.prune takes a lock), and
each notes where it cut the chains, so `audit verify` stays green.
"""

import asyncio
import logging
import threading
import time
from typing import Final

from app.record.config import RecordConfig
from app.record.store import StoreError, open_store

logger = logging.getLogger("app.record")

DAY_NS: Final = 86_400 * 1_000_000_000
BATCH: Final = 5_000  # records per writer per transaction: a few ms of SQLite's write lock


class Retention:
    def __init__(self, config: RecordConfig, days: float, interval: float) -> None:
        if days <= 0 or interval <= 0:
            raise ValueError("days and interval must be positive")
        self._config = config
        self.days = days
        self.interval = interval
        self._stopping = threading.Event()

    def prune_once(self, now_ns: int | None = None) -> int:
        """Delete the records answered more than `days` before `now_ns` (now); how many."""
        now = time.time_ns() if now_ns is None else now_ns
        before = now - int(self.days * DAY_NS)
        total = 0
        with open_store(self._config) as store:
            while not self._stopping.is_set():
                deleted = sum(store.prune(before, now, max_records=BATCH).values())
                total += deleted
                if deleted == 0:
                    break
        return total

    async def run(self) -> None:
        """Prune now, then every `interval` seconds, until cancelled. A failure is logged and
        the next round tries again: retention never stops the service."""
        while True:
            try:
                deleted = await asyncio.to_thread(self.prune_once)
            except StoreError as exc:
                logger.warning(
                    "record retention: prune failed (%s); next in %gs", exc, self.interval
                )
            else:
                if deleted:
                    logger.info(
                        "record retention: deleted %d record(s) answered more than %g day(s) ago",
                        deleted,
                        self.days,
                    )
            await asyncio.sleep(self.interval)

    def stop(self) -> None:
        """Let a prune in progress end after its current batch (its thread cannot be
        cancelled, and a stopping worker should not wait for a long one)."""
        self._stopping.set()
