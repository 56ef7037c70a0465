"""TextExposition against prometheus-client's own merge and text format, on files written with
prometheus-client's MmapedDict as workers write them: the same families, series and values."""

import math
import sys
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.mmap_dict import MmapedDict, mmap_key
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.parser import text_string_to_metric_families

from app.observability.text_exposition import TextExposition, Unsupported

Series = tuple[str, tuple[tuple[str, str], ...], float | str]

BUCKETS = ("0.001", "0.01", "0.1", "+Inf")


def write(
    directory: Path,
    file: str,
    metric: str,
    sample: str,
    labels: dict[str, str],
    value: float,
    timestamp: float = 0.0,
) -> None:
    store = MmapedDict(str(directory / file))  # type: ignore[no-untyped-call]
    key = mmap_key(metric, sample, list(labels), list(labels.values()), f"help of {metric}")
    store.write_value(key, value, timestamp)  # type: ignore[no-untyped-call]
    store.close()  # type: ignore[no-untyped-call]


def a_worker(directory: Path, pid: int, scale: float) -> None:
    """The series one worker of the service writes, in every kind its metrics use and more."""
    for route, n in (("/predict", 3), ('/odd"\\route\n', 1)):
        labels = {"route": route, "status": "200"}
        write(directory, f"counter_{pid}.db", "http", "http_total", labels, n * scale)
    for i, bound in enumerate(BUCKETS):
        labels = {"route": "/predict", "le": bound}
        write(directory, f"histogram_{pid}.db", "lat", "lat_bucket", labels, i * scale)
    write(directory, f"histogram_{pid}.db", "lat", "lat_sum", {"route": "/predict"}, 0.5 * scale)
    write(directory, f"summary_{pid}.db", "size", "size_count", {}, 2 * scale)
    write(directory, f"summary_{pid}.db", "size", "size_sum", {}, 7 * scale)
    for mode in ("livesum", "livemin", "max", "min", "sum", "livemax"):
        write(directory, f"gauge_{mode}_{pid}.db", f"g_{mode}", f"g_{mode}", {}, pid * scale)
    for stamp, name in ((pid, "recent"), (0.0, "never_set")):
        file = f"gauge_mostrecent_{pid}.db"
        write(directory, file, f"g_{name}", f"g_{name}", {}, pid * scale, stamp)


def parsed(text: str) -> dict[str, tuple[str, str, list[Series]]]:
    """Family -> (type, help, sorted series); NaN as a string, so that equal means equal."""

    def value(v: float) -> float | str:
        return "NaN" if math.isnan(v) else v

    return {
        family.name: (
            family.type,
            family.documentation,
            sorted(
                (s.name, tuple(sorted(s.labels.items())), value(s.value)) for s in family.samples
            ),
        )
        for family in text_string_to_metric_families(text)
    }


def upstream(directory: Path) -> str:
    registry = CollectorRegistry()
    MultiProcessCollector(registry, path=str(directory))  # type: ignore[no-untyped-call]
    return generate_latest(registry).decode()


@pytest.fixture
def workers(tmp_path: Path) -> Path:
    a_worker(tmp_path, 101, 1.0)
    a_worker(tmp_path, 202, 10.0)
    return tmp_path


def test_renders_what_prometheus_client_renders(workers: Path) -> None:
    mine = TextExposition(workers).render().decode()
    assert parsed(mine) == parsed(upstream(workers))
    assert sorted(mine.splitlines()) == sorted(upstream(workers).splitlines())


def test_later_scrapes_see_new_values_series_and_files(workers: Path) -> None:
    exposition = TextExposition(workers)
    exposition.render()  # keys parsed and kept
    write(workers, "counter_101.db", "http", "http_total", {"route": "/x", "status": "500"}, 4)
    write(
        workers, "counter_101.db", "http", "http_total", {"route": "/predict", "status": "200"}, 9
    )
    a_worker(workers, 303, 100.0)
    (workers / "gauge_livesum_202.db").unlink()  # a dead worker's live gauges, removed
    assert parsed(exposition.render().decode()) == parsed(upstream(workers))


def test_a_file_shorter_than_its_header_is_left_out(workers: Path) -> None:
    """As app/server/exposition.py's collector leaves it out (upstream fails the scrape)."""
    expected = parsed(upstream(workers))
    (workers / "counter_999.db").write_bytes(b"\0\0")  # a worker killed as it created it
    assert parsed(TextExposition(workers).render().decode()) == expected


@pytest.mark.parametrize(
    "file",
    ["gauge_all_7.db", "gauge_liveall_7.db", "enum_7.db"],
    ids=["gauge-all", "gauge-liveall", "unknown-type"],
)
def test_what_it_does_not_know_is_left_to_prometheus_client(workers: Path, file: str) -> None:
    write(workers, file, "odd", "odd", {}, 1.0)
    with pytest.raises(Unsupported):
        TextExposition(workers).render()


def test_a_file_cut_short_is_left_to_prometheus_client(workers: Path) -> None:
    path = workers / "counter_101.db"
    data = path.read_bytes()
    used = int.from_bytes(data[:4], sys.byteorder)
    path.write_bytes(data[: used - 10])
    with pytest.raises(Unsupported):
        TextExposition(workers).render()


def test_no_files_no_lines(tmp_path: Path) -> None:
    assert TextExposition(tmp_path).render() == b""
