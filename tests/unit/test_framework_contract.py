"""The framework internals the service relies on, each with the version it was read in.

Some code reaches past a library's public interface (named below, with where). A new version
may change those parts without notice, and the failure would then be silent or fatal at run
time (a SIGBUS, a worker that never stops). Each entry here pins the version the code was
written for and checks the parts themselves; on an upgrade, read the named code again, then
update the entry. pyproject.toml allows only the minor version read (checked below).
"""

import inspect
import os
import tempfile
import tomllib
from importlib.metadata import version
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.version import Version
from prometheus_client import Histogram, mmap_dict, multiprocess, values
from uvicorn.protocols.http.httptools_impl import RequestResponseCycle
from uvicorn.supervisors import multiprocess as uvicorn_multiprocess

from app.observability import metrics_store

# (distribution, the version the code relying on its internals was read against)
READ_AGAINST = [
    (
        "prometheus-client",
        "0.26.0",
    ),  # app/observability/metrics_store.py, prometheus.py (observe_all), text_exposition.py
    ("uvicorn", "0.54.0"),  # app/server/serve.py (DrainingProcess), app/observability/answered.py
    ("fastapi", "0.165.0"),  # app/api/bodies.py (the one-step route reads the Dependant)
]


@pytest.mark.parametrize(("distribution", "expected"), READ_AGAINST)
def test_installed_version_is_the_one_the_internals_were_read_in(
    distribution: str, expected: str
) -> None:
    installed = version(distribution)
    assert installed == expected, (
        f"{distribution} {installed} is installed, but the code using its internals was read "
        f"against {expected}: re-read the parts this file checks, then update READ_AGAINST"
    )


def _runtime_requirements() -> dict[str, Requirement]:
    pyproject = Path(__file__).resolve().parents[2] / "pyproject.toml"
    with pyproject.open("rb") as f:
        listed = tomllib.load(f)["project"]["dependencies"]
    return {r.name.lower(): r for r in map(Requirement, listed)}


@pytest.mark.parametrize(("distribution", "expected"), READ_AGAINST)
def test_pyproject_allows_only_the_minor_version_the_internals_were_read_in(
    distribution: str, expected: str
) -> None:
    """An install without constraints.txt (pip install .) must not pick an older or a newer
    minor version than the one this file checks."""
    read = Version(expected)
    specifier = _runtime_requirements()[distribution].specifier
    assert specifier.contains(read)
    assert not specifier.contains(Version(f"{read.major}.{read.minor + 1}.0"))
    if read.minor > 0:
        assert not specifier.contains(Version(f"{read.major}.{read.minor - 1}.999"))


def test_prometheus_value_class_is_chosen_through_module_globals() -> None:
    """app/observability/metrics_store.install replaces `values.ValueClass` (read by each metric
    when it creates a value) and `values.MmapedDict` (read by MultiProcessValue when it opens a
    file)."""
    creates = inspect.getsource(values.MultiProcessValue)
    assert "MmapedDict(filename)" in creates
    assert values.MutexValue.__init__.__code__.co_varnames[:7] == (
        "self",
        "typ",
        "metric_name",
        "name",
        "labelnames",
        "labelvalues",
        "help_text",
    )
    from prometheus_client import metrics

    assert "values.ValueClass(" in inspect.getsource(metrics)


def test_mmaped_dict_layout_is_the_one_reserved() -> None:
    """ReservedMmapedDict reserves `entry_bytes(key)` at `_used` before `_init_value` writes
    there, and a new file's first page: the parent's sizes and attributes must match."""
    assert mmap_dict._INITIAL_MMAP_SIZE == metrics_store.INITIAL_FILE_BYTES
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "counter_1.db")
        store = mmap_dict.MmapedDict(path)  # type: ignore[no-untyped-call]
        for key in ("k", "a longer key of 29 characters", "ü" * 13):
            used = store._used
            store._init_value(key)  # type: ignore[no-untyped-call]
            assert store._used - used == metrics_store.entry_bytes(key)
            assert store._capacity == os.fstat(store._f.fileno()).st_size
        store.close()  # type: ignore[no-untyped-call]


def test_multiprocess_parts() -> None:
    """app/server/exposition.py merges files with the static `MultiProcessCollector.merge`;
    app/server/process_guard.py removes a dead process's live gauges with `mark_process_dead`."""
    assert isinstance(
        inspect.getattr_static(multiprocess.MultiProcessCollector, "merge"), staticmethod
    )
    assert list(inspect.signature(multiprocess.mark_process_dead).parameters) == ["pid", "path"]


def test_histogram_parts_observe_all_uses() -> None:
    histogram = Histogram("contract_seconds", "x", registry=None)
    assert histogram._upper_bounds[-1] == float("inf")
    assert len(histogram._buckets) == len(histogram._upper_bounds)
    assert hasattr(histogram._sum, "inc")


def test_uvicorn_supervisor_hooks() -> None:
    """DrainingProcess overrides `target` (run in the worker) and `join` (called by the
    supervisor after every worker's end: a death, a restart, the stop)."""
    process = uvicorn_multiprocess.Process
    assert list(inspect.signature(process.target).parameters) == ["self", "sockets"]
    supervisor = inspect.getsource(uvicorn_multiprocess.Multiprocess.keep_subprocess_alive)
    assert "process.join()" in supervisor
    assert "Process(self.config, self.sockets)" in supervisor  # swapped for DrainingProcess
    for method in ("init_processes", "restart_all", "keep_subprocess_alive"):
        source = inspect.getsource(getattr(uvicorn_multiprocess.Multiprocess, method))
        assert "Process(self.config, self.sockets)" in source, method


def test_uvicorn_supervisor_signal_queue() -> None:
    """app/server/serve.py hands a SIGTERM taken before the supervisor runs to its
    `signal_queue`, which its own handler appends to and its loop reads."""
    source = inspect.getsource(uvicorn_multiprocess.Multiprocess)
    assert "self.signal_queue: list[int] = []" in source
    assert "self.signal_queue.append(sig)" in source
    assert "for sig in tuple(self.signal_queue):" in source


def test_uvicorn_request_cycle_parts() -> None:
    """The edge reads a request's `scope` (its "state" dict) and `response_started`."""
    params = inspect.signature(RequestResponseCycle.__init__).parameters
    assert "scope" in params
    source = inspect.getsource(RequestResponseCycle)
    assert "self.response_started = False" in source
    from uvicorn.protocols.http import httptools_impl

    assert '"state": self.app_state.copy()' in inspect.getsource(httptools_impl)


def test_fastapi_dependant_fields_the_one_step_route_reads() -> None:
    """app/api/bodies.py decides from a route's Dependant whether its endpoint can be called
    directly, and runs its dependencies itself: every field it reads must still mean that."""
    from fastapi.dependencies.models import Dependant

    fields = {
        "call",
        "path_params",
        "query_params",
        "header_params",
        "cookie_params",
        "body_params",
        "dependencies",
        "request_param_name",
        "websocket_param_name",
        "http_connection_param_name",
        "response_param_name",
        "background_tasks_param_name",
        "security_scopes_param_name",
    }
    assert fields <= set(Dependant.__dataclass_fields__)


def test_an_included_router_is_matched_through_a_route_of_its_own() -> None:
    """The reason the routes are added to the app rather than through an APIRouter
    (app/api/predictions.py, docs/architecture.md, "Departures"): FastAPI 0.165 keeps an
    included router as one route that matches for its own routes, a layer every request crosses.
    If include_router copies the routes into the app again, the departure has lost its reason:
    use an APIRouter per resource."""
    from fastapi import APIRouter, FastAPI

    app, router = FastAPI(), APIRouter()

    @router.get("/x")
    async def x() -> None: ...

    before = len(app.router.routes)
    app.include_router(router)
    (added,) = app.router.routes[before:]
    assert type(added).__name__ == "_IncludedRouter"
    assert getattr(added, "original_router", None) is router


def test_mmap_dict_file_layout_text_exposition_reads() -> None:
    """app/observability/text_exposition.py reads the files itself: an 8-byte header whose
    first int is the bytes used, then entries (int length, key, padding to 8, two doubles)."""
    source = inspect.getsource(mmap_dict)
    assert "_unpack_integer = struct.Struct(b'i').unpack_from" in source
    assert "_unpack_two_doubles = struct.Struct(b'dd').unpack_from" in source
    assert "padded_len = encoded_len + (8 - (encoded_len + 4) % 8)" in source
    assert "pos = 8" in inspect.getsource(mmap_dict._read_all_values)
