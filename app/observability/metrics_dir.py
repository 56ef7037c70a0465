"""The directory where each worker writes its Prometheus metrics (prometheus-client's multiprocess
mode), prepared by `python -m app` before any process imports prometheus_client.

prometheus-client chooses, when it is imported, between values kept in the process and values
written to files in PROMETHEUS_MULTIPROC_DIR. With several workers only the files add up across
them: without them each scrape reached one worker (measured: 40 requests over 2 workers scraped
as 18 or 22). So `python -m app` always sets the variable before it starts a worker: to the
directory PROMETHEUS_MULTIPROC_DIR names, or else to a fresh private one it removes at exit.
Files left by an earlier run would be added to this one's counts, so they are deleted at start.
A private directory is named after the process that made it, since a process killed outright
(SIGKILL, the OOM killer) cannot remove its own: the next start removes those of this user
whose process is gone, or whose process number is now its own (a container restarted in
place).

This module must not import prometheus_client.
"""

import os
import re
import shutil
import stat
import tempfile
from collections.abc import Iterator, MutableMapping
from contextlib import contextmanager
from pathlib import Path
from typing import Final

ENV_VAR: Final = "PROMETHEUS_MULTIPROC_DIR"
# prometheus-client's files: counter_<pid>.db, gauge_livesum_<pid>.db, histogram_<pid>.db, ...
METRIC_FILES: Final = "*.db"
PRIVATE_PREFIX: Final = "malignancy-predictor-metrics-"
_PRIVATE: Final = re.compile(re.escape(PRIVATE_PREFIX) + r"(\d{1,10})-[A-Za-z0-9_]+")


class MetricsDirError(OSError):
    """The directory cannot be used; the message is one line."""


@contextmanager
def metrics_dir(
    configured: Path | None,
    environ: MutableMapping[str, str] = os.environ,
    temp_root: Path | None = None,
) -> Iterator[Path]:
    """Set ENV_VAR in `environ` to `configured` (emptied of metric files) or to a new private
    directory in `temp_root` (the system's temporary folder), removed when the context ends."""
    if configured is not None:
        _empty(configured)
        environ[ENV_VAR] = str(configured)
        yield configured
        return
    root = Path(tempfile.gettempdir()) if temp_root is None else temp_root
    remove_orphans(root)
    prefix = f"{PRIVATE_PREFIX}{os.getpid()}-"
    created = Path(tempfile.mkdtemp(prefix=prefix, dir=root))  # mode 0700
    environ[ENV_VAR] = str(created)
    try:
        yield created
    finally:
        shutil.rmtree(created, ignore_errors=True)


def remove_orphans(root: Path) -> list[Path]:
    """Remove the private directories in `root` left by processes of this user that are gone
    (or whose number this process now has); the ones removed. Symbolic links, other users'
    directories and anything that cannot be read are left alone."""
    removed: list[Path] = []
    try:
        entries = list(os.scandir(root))
    except OSError:
        return removed
    for entry in entries:
        match = _PRIVATE.fullmatch(entry.name)
        if match is None or not _own_directory(entry) or _alive(int(match.group(1))):
            continue
        shutil.rmtree(entry.path, ignore_errors=True)
        removed.append(Path(entry.path))
    return removed


def _own_directory(entry: os.DirEntry[str]) -> bool:
    try:
        info = entry.stat(follow_symlinks=False)
    except OSError:
        return False
    return stat.S_ISDIR(info.st_mode) and info.st_uid == os.getuid()


def _alive(pid: int) -> bool:
    """Whether another process numbered `pid` runs (a process of another user counts)."""
    if pid == os.getpid():
        return False  # this process has made no directory yet: the one named so is older
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError):
        return True
    return True


def _empty(directory: Path) -> None:
    try:
        directory.mkdir(parents=True, exist_ok=True)
        for stale in directory.glob(METRIC_FILES):
            stale.unlink()
        probe = tempfile.NamedTemporaryFile(dir=directory, suffix=".probe")  # noqa: SIM115
        probe.close()
    except OSError as exc:
        raise MetricsDirError(f"{ENV_VAR} {directory}: {exc.strerror or exc}") from None
