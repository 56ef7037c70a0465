"""Metric values that a full, read-only or vanished PROMETHEUS_MULTIPROC_DIR cannot make fatal.

prometheus-client keeps each worker's values in files it maps into memory (its `MmapedDict`):
it creates a file of 64 KiB with `truncate`, a sparse file with no space reserved, and doubles
it the same way when it fills. On a filesystem that is full (a size-limited tmpfs, a memory-
backed emptyDir) the first write to a page without space is not an error the code can catch but
SIGBUS: the worker dies without a word (measured: 1 worker, dead within 6 requests on a 64 KiB
tmpfs; 2 workers, crashing in a loop).

`install()` changes two things, before any metric exists:
- the bytes of a file are reserved with `posix_fallocate` before they are first written (its
  header, each new series), so that a full filesystem is the OSError (ENOSPC) of that call,
  raised when a series is created, never a SIGBUS on a later write: every write goes to space
  already reserved;
- creating a series that fails so (full, read-only, the directory gone) gives an in-memory value
  instead (prometheus-client's own `MutexValue`): the request that created it is answered, the
  series is missing from the exposition, and the worker says so once in the log and counts it
  in `predictor_metrics_lost_series_total` if that counter itself got its space.

Both rely on prometheus-client's internals (`values.ValueClass`, `values.MmapedDict`, and
`MmapedDict`'s `_capacity`, `_used`, `_f`, `_init_value`); tests/unit/test_framework_contract.py
names them and the version they were read in, and pyproject.toml bounds that version.
"""

import logging
import mmap
import os
from collections.abc import Callable
from typing import Any, Final

from prometheus_client import values
from prometheus_client.mmap_dict import MmapedDict

logger = logging.getLogger("app.metrics")

# prometheus-client's first file size (mmap_dict._INITIAL_MMAP_SIZE, checked by the contract).
INITIAL_FILE_BYTES: Final = 1 << 16
_ENTRY_FIXED_BYTES: Final = 4 + 16  # the key's length, then its value and timestamp (doubles)


def entry_bytes(key: str) -> int:
    """Bytes an entry for `key` takes in a file, as `MmapedDict._init_value` lays it out."""
    encoded = len(key.encode("utf-8"))
    padded = encoded + (8 - (encoded + 4) % 8)
    return _ENTRY_FIXED_BYTES + padded


def reserve_new_file(path: str) -> None:
    """Create `path`, if it does not exist, at the size prometheus-client gives a new file, with
    real space for its first page (its header) and none for the rest, as before (ENOSPC: OSError,
    and no file: an empty one would break every scrape, the exposition cannot read a file
    shorter than its 8-byte header)."""
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o644)
    except FileExistsError:
        return
    try:
        os.posix_fallocate(fd, 0, mmap.PAGESIZE)
        os.ftruncate(fd, INITIAL_FILE_BYTES)
    except OSError:
        os.unlink(path)
        raise
    finally:
        os.close(fd)


class ReservedMmapedDict(MmapedDict):
    """prometheus-client's MmapedDict that reserves the space of every byte before it writes it.

    Only what is written is reserved (the header page, then each new entry), so a file takes on
    disk what it took before: the pages it uses.
    """

    def __init__(self, filename: str, read_mode: bool = False) -> None:
        if not read_mode:
            reserve_new_file(filename)
        super().__init__(filename, read_mode)  # type: ignore[no-untyped-call]

    def _init_value(self, key: str) -> None:
        # The parent writes the entry at `_used`, growing (and remapping) the file first if it
        # must; the space for those bytes is reserved before, so no write meets a full disk.
        os.posix_fallocate(self._f.fileno(), self._used, entry_bytes(key))
        super()._init_value(key)  # type: ignore[no-untyped-call]


class LostSeries:
    """What this process could not store: counted, and said once."""

    def __init__(self) -> None:
        self.count = 0
        self.on_lost: Callable[[], None] | None = None

    def lost(self, name: str, exc: OSError) -> None:
        self.count += 1
        if self.count == 1:
            logger.error(
                "metrics: PROMETHEUS_MULTIPROC_DIR refused series %s (%s); this worker keeps "
                "such series in memory only, missing from the exposition, and counts them in "
                "predictor_metrics_lost_series_total; this is said once",
                name,
                exc.strerror or exc,
            )
        if self.on_lost is not None:
            try:
                self.on_lost()
            except OSError:  # the counter's own series could not be stored either
                self.on_lost = None


LOST: Final = LostSeries()


def _falling_back(mmaped: Callable[..., Any]) -> Callable[..., Any]:
    def value(
        typ: str,
        metric_name: str,
        name: str,
        labelnames: Any,
        labelvalues: Any,
        help_text: str,
        **kwargs: Any,
    ) -> Any:
        try:
            return mmaped(typ, metric_name, name, labelnames, labelvalues, help_text, **kwargs)
        except OSError as exc:
            LOST.lost(name, exc)
            return values.MutexValue(  # type: ignore[no-untyped-call]
                typ, metric_name, name, labelnames, labelvalues, help_text, **kwargs
            )

    value.falls_back = True  # type: ignore[attr-defined]
    return value


def install() -> bool:
    """Make the file-backed values safe (see above); False, and nothing done, when values live
    in the process (no PROMETHEUS_MULTIPROC_DIR when prometheus_client was imported)."""
    current = values.ValueClass
    if current is values.MutexValue:
        return False
    if not getattr(current, "falls_back", False):
        values.MmapedDict = ReservedMmapedDict  # type: ignore[attr-defined]
        values.ValueClass = _falling_back(current)
    return True
