"""app/observability/metrics_store.py in process: reserved files, and the fall-back when a file
cannot be had.

The full filesystem itself (a real tmpfs) is tests/system/observability/test_metrics_faults.py.
"""

import logging
import mmap
from pathlib import Path

import pytest
from prometheus_client import values
from prometheus_client.mmap_dict import MmapedDict

from app.observability import metrics_store


@pytest.fixture
def lost(monkeypatch: pytest.MonkeyPatch) -> metrics_store.LostSeries:
    fresh = metrics_store.LostSeries()
    monkeypatch.setattr(metrics_store, "LOST", fresh)
    monkeypatch.setattr(values, "MmapedDict", metrics_store.ReservedMmapedDict, raising=False)
    return fresh


def file_backed(directory: Path, monkeypatch: pytest.MonkeyPatch) -> object:
    """A value class as prometheus-client makes it in multiprocess mode, made safe."""
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(directory))
    return metrics_store._falling_back(values.MultiProcessValue(lambda: 4242))  # type: ignore[no-untyped-call]


def make(value_class: object, name: str) -> object:
    return value_class("counter", "c", name, ("route",), (name,), "help")  # type: ignore[operator]


def test_a_writable_directory_gets_file_backed_values(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, lost: metrics_store.LostSeries
) -> None:
    value = make(file_backed(tmp_path, monkeypatch), "ok_total")
    value.inc(3)  # type: ignore[attr-defined]
    assert value._multiprocess  # type: ignore[attr-defined]
    stored = MmapedDict.read_all_values_from_file(  # type: ignore[no-untyped-call]
        str(tmp_path / "counter_4242.db")
    )
    assert [number for _, number, _, _ in stored] == [3.0]
    assert lost.count == 0


@pytest.mark.parametrize(
    "where",
    [
        pytest.param(lambda tmp: tmp / "gone", id="directory-gone"),
        pytest.param(lambda tmp: (tmp / "a-file").touch() or tmp / "a-file", id="not-a-directory"),
    ],
)
def test_a_directory_that_refuses_gives_in_memory_values_said_once(
    where: object,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    lost: metrics_store.LostSeries,
    caplog: pytest.LogCaptureFixture,
) -> None:
    directory = where(tmp_path)  # type: ignore[operator]
    counted: list[int] = []
    lost.on_lost = lambda: counted.append(1)
    value_class = file_backed(directory, monkeypatch)
    with caplog.at_level(logging.ERROR, logger="app.metrics"):
        made = [make(value_class, f"series_{n}") for n in range(3)]
    for value in made:
        value.inc(1)  # type: ignore[attr-defined]
        assert value.get() == 1.0  # type: ignore[attr-defined]
        assert isinstance(value, values.MutexValue)
    assert lost.count == 3
    assert len(counted) == 3
    said = [r for r in caplog.records if "PROMETHEUS_MULTIPROC_DIR refused" in r.getMessage()]
    assert len(said) == 1


def test_a_new_file_has_its_header_page_reserved_and_the_usual_size(tmp_path: Path) -> None:
    path = tmp_path / "counter_1.db"
    metrics_store.reserve_new_file(str(path))
    info = path.stat()
    assert info.st_size == metrics_store.INITIAL_FILE_BYTES
    assert info.st_blocks * 512 >= mmap.PAGESIZE


def test_every_written_byte_is_reserved_as_the_file_grows(tmp_path: Path) -> None:
    path = tmp_path / "counter_1.db"
    store = metrics_store.ReservedMmapedDict(str(path))
    for n in range(2000):  # about 100 KiB of keys: the file doubles past its first 64 KiB
        store.write_value(f"key number {n} " + "x" * 30, float(n), 0.0)  # type: ignore[no-untyped-call]
    used = store._used
    store.close()  # type: ignore[no-untyped-call]
    assert used > metrics_store.INITIAL_FILE_BYTES
    assert path.stat().st_blocks * 512 >= used
    values_read = [
        v
        for _, v, _, _ in MmapedDict.read_all_values_from_file(  # type: ignore[no-untyped-call]
            str(path)
        )
    ]
    assert values_read == [float(n) for n in range(2000)]


def test_install_is_a_no_op_for_values_in_the_process() -> None:
    if values.ValueClass is values.MutexValue:
        assert metrics_store.install() is False
    else:
        assert metrics_store.install() is True


def test_entry_bytes_is_eight_byte_aligned() -> None:
    for length in range(40):
        assert metrics_store.entry_bytes("k" * length) % 8 == 0
