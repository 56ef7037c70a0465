"""Shared helpers of the benchmarks (`python -m scripts.bench.NAME`): machine, statistics, JSON.

The machines these run on are shared and noisy, so every script measures its candidates side by
side in interleaved rounds and reports ratios within one run next to absolute figures.
"""

import json
import os
import platform
import statistics
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[2]

BLAS_ENV = ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE", "OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS")


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def blas_info() -> list[dict[str, Any]]:
    """The BLAS libraries loaded in this process and the kernel each runs (via threadpoolctl)."""
    try:
        from threadpoolctl import threadpool_info
    except ImportError:
        return []
    keep = ("internal_api", "version", "architecture", "num_threads", "prefix")
    return [{k: lib.get(k) for k in keep} for lib in threadpool_info()]


def machine_info() -> dict[str, Any]:
    import numpy as np

    try:
        load = list(os.getloadavg())
    except OSError:
        load = []
    return {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "cpu": cpu_model(),
        "cores": os.cpu_count(),
        "load_average": [round(x, 2) for x in load],
        "python": platform.python_version(),
        "numpy": np.__version__,
        "platform": platform.platform(),
        "blas": blas_info(),
        "blas_env": {k: os.environ[k] for k in BLAS_ENV if k in os.environ},
    }


def median(values: Sequence[float]) -> float:
    return statistics.median(values)


def percentile(values: Sequence[float], q: float) -> float:
    """The q-th percentile (0..100) by linear interpolation between closest ranks."""
    ordered = sorted(values)
    if not ordered:
        raise ValueError("no values")
    pos = (len(ordered) - 1) * q / 100.0
    lo = int(pos)
    hi = min(lo + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (pos - lo)


def write_json(path: Path | None, payload: dict[str, Any]) -> None:
    if path is None:
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(payload, indent=1) + "\n", encoding="utf-8")
    print(f"wrote {path}")


def print_machine(info: dict[str, Any]) -> None:
    blas = ", ".join(
        f"{b.get('internal_api')} {b.get('version')} {b.get('architecture')}"
        f" x{b.get('num_threads')}"
        for b in info["blas"]
    )
    print(
        f"machine: {info['cpu']}, {info['cores']} cores, load {info['load_average']}, "
        f"Python {info['python']}, NumPy {info['numpy']}"
    )
    if blas:
        print(f"BLAS: {blas}" + (f"  env {info['blas_env']}" if info["blas_env"] else ""))
