"""The directory where each worker writes its Prometheus metrics (prometheus-client's multiprocess
mode), prepared by `python -m app` before any process imports prometheus_client.

prometheus-client chooses, when it is imported, between values kept in the process and values
written to files in PROMETHEUS_MULTIPROC_DIR. With several workers only the files add up across
them: without them each scrape reached one worker (measured: 40 requests over 2 workers scraped
as 18 or 22). So `python -m app` always sets the variable before it starts a worker: to the
directory PROMETHEUS_MULTIPROC_DIR names, or else to a fresh private one it removes at exit.
Files left by an earlier run would be added to this one's counts, so they are deleted at start.
A process killed outright (SIGKILL, the OOM killer) cannot remove its private directory, so
each holds an flock on an owner file in it for as long as it runs, and each start removes this
user's private directories whose owner file nobody holds. A lock, not a process number: services
in other PID namespaces (containers sharing a temporary folder) see each other's locks, not each
other's processes.

This module must not import prometheus_client.
"""

import fcntl
import os
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
OWNER_FILE: Final = ".owner"  # flocked by the process whose directory it is, while it runs


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
    created = Path(tempfile.mkdtemp(prefix=PRIVATE_PREFIX, dir=root))  # mode 0700
    owner = _claim(created)
    environ[ENV_VAR] = str(created)
    try:
        yield created
    finally:
        shutil.rmtree(created, ignore_errors=True)
        os.close(owner)


def _claim(directory: Path) -> int:
    """Hold the owner file of `directory` for as long as this process runs (the descriptor is
    not inherited); it gets its name only once locked, so an owner file is never seen free
    while its service starts."""
    claiming = directory / (OWNER_FILE + ".new")
    descriptor = os.open(claiming, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    fcntl.flock(descriptor, fcntl.LOCK_EX)
    claiming.rename(directory / OWNER_FILE)
    return descriptor


def remove_orphans(root: Path) -> list[Path]:
    """Remove the private directories in `root` whose owner file nobody holds (their service
    was killed outright); the ones removed. Directories without an owner file (being made, or
    left by an older version), symbolic links, other users' directories and anything that
    cannot be read are left alone."""
    removed: list[Path] = []
    try:
        entries = list(os.scandir(root))
    except OSError:
        return removed
    for entry in entries:
        if not entry.name.startswith(PRIVATE_PREFIX) or not _own_directory(entry):
            continue
        if _held(Path(entry.path) / OWNER_FILE) is False:
            shutil.rmtree(entry.path, ignore_errors=True)
            removed.append(Path(entry.path))
    return removed


def _own_directory(entry: os.DirEntry[str]) -> bool:
    try:
        info = entry.stat(follow_symlinks=False)
    except OSError:
        return False
    return stat.S_ISDIR(info.st_mode) and info.st_uid == os.getuid()


def _held(owner_file: Path) -> bool | None:
    """Whether a running process holds `owner_file`; None when there is none to ask."""
    try:
        descriptor = os.open(owner_file, os.O_RDONLY | os.O_NOFOLLOW)
    except OSError:
        return None
    try:
        fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    except OSError:
        return None
    finally:
        os.close(descriptor)
    return False


def _empty(directory: Path) -> None:
    try:
        directory.mkdir(parents=True, exist_ok=True)
        for stale in directory.glob(METRIC_FILES):
            stale.unlink()
        probe = tempfile.NamedTemporaryFile(dir=directory, suffix=".probe")  # noqa: SIM115
        probe.close()
    except OSError as exc:
        raise MetricsDirError(f"{ENV_VAR} {directory}: {exc.strerror or exc}") from None
