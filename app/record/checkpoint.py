"""SQLite's WAL checkpoints, off the commit path.

By default SQLite checkpoints in the connection that commits, once the WAL passes 1,000 pages:
that commit copies the WAL's pages into the database file and syncs it, two flushes more than a
commit, so its group (and every request queued behind it) waits 10 to 20 ms on a virtual disk
instead of 2; with 10,000-row records it is every few commits. The recorder's writer turns that
off on its connection (`SqlStore.tune_for_commits`), and `Checkpointer`, a thread with a
connection of its own, checkpoints when nudged after commits, at most once every
`min_interval` seconds. Its checkpoints are PASSIVE: they take no lock the writer waits for.

What stays on the commit path is bounded: a passive checkpoint copies the frames that were in
the WAL when it began, and the WAL restarts from its beginning only when every frame was
copied by the time a transaction begins, which a writer committing all the time may never
allow. When a checkpoint leaves more than `max_wal_pages` in the WAL, `over_cap` tells the
writer to checkpoint once itself, between two of its commits: then nothing is appended while
it runs, the WAL is copied to its end, and the next commit restarts it. That checkpoint copies
only what came since the last background one.

Durability is SQLite's own: the checkpointing connection runs with synchronous=FULL, so the
WAL is synced before its pages are copied and the database file after.
"""

import logging
import threading
from collections.abc import Callable
from typing import Final

from app.record.store import SqlStore

logger = logging.getLogger("app.record")

DEFAULT_MAX_WAL_PAGES: Final = 4_096  # 16 MiB of 4 KiB pages
DEFAULT_MIN_INTERVAL: Final = 1.0


class Checkpointer:
    def __init__(
        self,
        store_factory: Callable[[], SqlStore],
        max_wal_pages: int = DEFAULT_MAX_WAL_PAGES,
        min_interval: float = DEFAULT_MIN_INTERVAL,
    ) -> None:
        if max_wal_pages < 1 or min_interval < 0:
            raise ValueError("max_wal_pages must be positive and min_interval at least 0")
        self._factory = store_factory
        self._max_pages = max_wal_pages
        self._min_interval = min_interval
        self._nudged = threading.Event()
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._run, name="record-checkpoint", daemon=True)
        self.over_cap = False  # set by this thread, cleared by the writer once it checkpointed
        self.checkpoints = 0

    def start(self) -> None:
        self._thread.start()

    def nudge(self) -> None:
        """Commits were written: checkpoint soon."""
        self._nudged.set()

    def stop(self, timeout: float = 10.0) -> None:
        self._stopping.set()
        self._nudged.set()
        self._thread.join(timeout)

    def _run(self) -> None:
        store: SqlStore | None = None
        while True:
            self._nudged.wait()
            if self._stopping.is_set():
                break
            self._nudged.clear()
            try:
                store = store or self._factory()
                left = store.checkpoint()
            except Exception as exc:  # the writer's commits report the store's state
                logger.debug("record checkpoint failed: %s", exc)
                if store is not None:
                    store.close()
                store = None
            else:
                self.checkpoints += 1
                self.over_cap = left > self._max_pages
            self._stopping.wait(self._min_interval)
        if store is not None:
            store.close()
