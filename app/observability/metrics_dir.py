"""The directory where each worker writes its Prometheus metrics (prometheus-client's multiprocess
mode), prepared by `python -m app` before any process imports prometheus_client.

prometheus-client chooses, when it is imported, between values kept in the process and values
written to files in PROMETHEUS_MULTIPROC_DIR. With several workers only the files add up across
them: without them each scrape reached one worker (measured: 40 requests over 2 workers scraped
as 18 or 22). So `python -m app` always sets the variable before it starts a worker: to the
directory PROMETHEUS_MULTIPROC_DIR names, or else to a fresh private one it removes at exit.
Files left by an earlier run would be added to this one's counts, so they are deleted at start.

This module must not import prometheus_client.
"""

import os
import shutil
import tempfile
from collections.abc import Iterator, MutableMapping
from contextlib import contextmanager
from pathlib import Path
from typing import Final

ENV_VAR: Final = "PROMETHEUS_MULTIPROC_DIR"
# prometheus-client's files: counter_<pid>.db, gauge_livesum_<pid>.db, histogram_<pid>.db, ...
METRIC_FILES: Final = "*.db"


class MetricsDirError(OSError):
    """The directory cannot be used; the message is one line."""


@contextmanager
def metrics_dir(
    configured: Path | None, environ: MutableMapping[str, str] = os.environ
) -> Iterator[Path]:
    """Set ENV_VAR in `environ` to `configured` (emptied of metric files) or to a new private
    directory, removed when the context ends."""
    if configured is not None:
        _empty(configured)
        environ[ENV_VAR] = str(configured)
        yield configured
        return
    created = Path(tempfile.mkdtemp(prefix="malignancy-predictor-metrics-"))  # mode 0700
    environ[ENV_VAR] = str(created)
    try:
        yield created
    finally:
        shutil.rmtree(created, ignore_errors=True)


def _empty(directory: Path) -> None:
    try:
        directory.mkdir(parents=True, exist_ok=True)
        for stale in directory.glob(METRIC_FILES):
            stale.unlink()
        probe = tempfile.NamedTemporaryFile(dir=directory, suffix=".probe")  # noqa: SIM115
        probe.close()
    except OSError as exc:
        raise MetricsDirError(f"{ENV_VAR} {directory}: {exc.strerror or exc}") from None
