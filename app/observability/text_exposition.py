"""Every worker's metric files in Prometheus' text format (0.0.4), at a fraction of the cost.

prometheus-client's MultiProcessCollector decodes every key of every file (JSON) and builds
its samples anew on each scrape, then `generate_latest` escapes and formats each sample's name
and labels again: about 4 ms of CPU per scrape asked as Prometheus asks (OpenMetrics first,
gzip), 4 to 5% of a core at 10 Hz, taken from the workers where CPU is the limit (a pod's).
A file's keys never change once written (prometheus-client only appends entries, each at a fixed
offset), so `TextExposition` parses each key once, remembers where its value lies, and keeps
each series' line prefix: a scrape reads the values, adds them up as prometheus-client does
(`MultiProcessCollector._accumulate_metrics`: counters and summaries summed, histogram buckets
made cumulative with `_count` from them, gauges by their multiprocess mode) and formats the
numbers.

Anything it does not know (another metric type or gauge mode, a name that needs escaping, a file
cut short) raises `Unsupported`: the exposition then answers through prometheus-client, which
stays the reference (tests/unit/observability/test_text_exposition.py holds the two equal).
The file layout it reads is prometheus-client's `mmap_dict` (named, with its version, in
tests/unit/test_framework_contract.py).
"""

import functools
import json
import os
import re
import struct
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final, cast

from prometheus_client import utils

# How prometheus-client writes a number (Go's formatting: +Inf, 1e+06, ...).
go_float = cast(Callable[[float], str], utils.floatToGoString)

_HEADER_BYTES: Final = 8  # `used` (int32), then padding
_INT: Final = struct.Struct("i")  # mmap_dict's _unpack_integer
_DOUBLES: Final = struct.Struct("dd")  # mmap_dict's _unpack_two_doubles: value, timestamp
_LEGACY_NAME: Final = re.compile(r"^[a-zA-Z_:][a-zA-Z0-9_:]*$")
_LEGACY_LABEL: Final = re.compile(r"^[a-zA-Z_][a-zA-Z0-9_]*$")
_SUMMED_TYPES: Final = ("counter", "summary")
_GAUGE_MODES: Final = frozenset(
    {"min", "livemin", "max", "livemax", "sum", "livesum", "mostrecent", "livemostrecent"}
)
Labels = tuple[tuple[str, str], ...]


class Unsupported(Exception):  # noqa: N818 - a signal to fall back, not a failure
    """Something this renderer does not handle: answer through prometheus-client instead."""


@dataclass(frozen=True, slots=True)
class _Key:
    metric: str  # the family's name, e.g. predictor_http_requests
    sample: str  # the sample's name, e.g. predictor_http_requests_total
    labels: Labels  # sorted, without a histogram bucket's `le`
    help: str
    le: float | None = None  # a histogram bucket's bound


@dataclass(slots=True)
class _File:
    """What is known of one file: its type and mode, and each entry's key and value offset."""

    inode: int
    typ: str
    mode: str
    parsed_to: int = _HEADER_BYTES
    entries: list[tuple[int, _Key]] = field(default_factory=list)


@dataclass(slots=True)
class _Family:
    typ: str
    help: str
    mode: str = ""
    values: dict[tuple[str, Labels], float] = field(default_factory=dict)
    stamps: dict[tuple[str, Labels], float] = field(default_factory=dict)
    buckets: dict[Labels, dict[float, float]] = field(
        default_factory=lambda: defaultdict(lambda: defaultdict(float))
    )


class TextExposition:
    """Renders the files of one PROMETHEUS_MULTIPROC_DIR; keeps what it parsed between calls."""

    def __init__(self, directory: str | Path) -> None:
        self.directory = Path(directory)
        self._files: dict[str, _File] = {}
        self._prefixes: dict[tuple[str, Labels], str] = {}
        self._headers: dict[str, str] = {}

    def render(self) -> bytes:
        """The text format of every readable file's series; Unsupported if one cannot be read
        here (the caller falls back to prometheus-client, which says why)."""
        families: dict[str, _Family] = {}
        seen = set()
        for path in sorted(str(p) for p in self.directory.glob("*.db")):
            data, inode = _read(path)
            if data is None:
                continue  # too short, or gone since the glob: as the collector leaves it out
            seen.add(path)
            self._add(families, self._known(path, inode, data), data)
        for gone in self._files.keys() - seen:
            del self._files[gone]
        return "".join(self._lines(families)).encode("utf-8")

    # -- reading ----------------------------------------------------------------------------
    def _known(self, path: str, inode: int, data: bytes) -> _File:
        known = self._files.get(path)
        if known is None or known.inode != inode or known.parsed_to > len(data):
            known = self._files[path] = _File(inode, *_type_and_mode(path))
        while known.parsed_to < len(data):
            known.parsed_to = self._parse_entry(known, data, known.parsed_to)
        return known

    def _parse_entry(self, known: _File, data: bytes, pos: int) -> int:
        length: int = _INT.unpack_from(data, pos)[0]
        padded = length + (8 - (length + 4) % 8)
        if length <= 0 or pos + 4 + padded + 16 > len(data):
            raise Unsupported("an entry runs past the file's used bytes")
        metric, sample, labels, help_text = json.loads(data[pos + 4 : pos + 4 + length])
        le = labels.pop("le", None) if known.typ == "histogram" else None
        key = _Key(
            metric, sample, tuple(sorted(labels.items())), help_text, _bound(le, sample, metric)
        )
        _check_names(key)
        known.entries.append((pos + 4 + padded, key))
        return pos + 4 + padded + 16

    def _add(self, families: dict[str, _Family], known: _File, data: bytes) -> None:
        for offset, key in known.entries:
            family = families.get(key.metric)
            if family is None:
                family = families[key.metric] = _Family(known.typ, key.help, known.mode)
            value, stamp = _DOUBLES.unpack_from(data, offset)
            _ACCUMULATE[family.typ](family, key, value, stamp, known)

    # -- writing ----------------------------------------------------------------------------
    def _lines(self, families: dict[str, _Family]) -> list[str]:
        lines: list[str] = []
        for name, family in families.items():
            lines.append(self._header(name, family))
            if family.typ == "histogram":
                _cumulate(name, family)
            for (sample, labels), value in family.values.items():
                lines.append(self._prefix(sample, labels) + go_float(value) + "\n")
        return lines

    def _header(self, name: str, family: _Family) -> str:
        header = self._headers.get(name)
        if header is None:
            shown = name + "_total" if family.typ == "counter" else name
            text = family.help.replace("\\", r"\\").replace("\n", r"\n")
            header = f"# HELP {shown} {text}\n# TYPE {shown} {family.typ}\n"
            self._headers[name] = header
        return header

    def _prefix(self, sample: str, labels: Labels) -> str:
        prefix = self._prefixes.get((sample, labels))
        if prefix is None:
            shown = ",".join(f'{k}="{_escape(v)}"' for k, v in sorted(labels))
            prefix = f"{sample}{{{shown}}} " if labels else f"{sample} "
            self._prefixes[(sample, labels)] = prefix
        return prefix


def _read(path: str) -> tuple[bytes | None, int]:
    """The file's used bytes and its inode; None if it is shorter than its header or gone."""
    try:
        with open(path, "rb") as f:
            inode = os.fstat(f.fileno()).st_ino
            head = f.read(_HEADER_BYTES)
            if len(head) < _HEADER_BYTES:
                return None, inode
            used: int = _INT.unpack_from(head, 0)[0]
            data = head + f.read(max(0, used - _HEADER_BYTES))
    except FileNotFoundError:
        return None, 0
    if used < _HEADER_BYTES or len(data) < used:
        raise Unsupported(f"{path}: cut short")
    return data, inode


def _type_and_mode(path: str) -> tuple[str, str]:
    parts = os.path.basename(path).split("_")
    typ = parts[0]
    if typ == "gauge":
        if len(parts) != 3 or parts[1] not in _GAUGE_MODES:
            raise Unsupported(f"gauge mode of {path}")
        return typ, parts[1]
    if typ not in ("counter", "summary", "histogram"):
        raise Unsupported(f"metric type of {path}")
    return typ, ""


def _check_names(key: _Key) -> None:
    if not _LEGACY_NAME.match(key.sample) or not _LEGACY_NAME.match(key.metric):
        raise Unsupported(f"name {key.sample!r} needs escaping")
    for label, _ in key.labels:
        if not _LEGACY_LABEL.match(label) or label in ("pid", "le"):
            raise Unsupported(f"label {label!r}")


def _bound(le: str | None, sample: str, metric: str) -> float | None:
    """A histogram bucket's bound; only `<metric>_bucket` samples have one."""
    if (le is not None) != (sample == metric + "_bucket"):
        raise Unsupported(f"{sample}: le label")
    return None if le is None else float(le)


def _escape(value: str) -> str:
    return value.replace("\\", r"\\").replace("\n", r"\n").replace('"', r"\"")


def _summed(family: _Family, key: _Key, value: float, stamp: float, known: _File) -> None:
    series = (key.sample, key.labels)
    family.values[series] = family.values.get(series, 0.0) + value


def _histogram(family: _Family, key: _Key, value: float, stamp: float, known: _File) -> None:
    if key.le is not None:
        family.buckets[key.labels][key.le] += value
    else:  # _sum
        _summed(family, key, value, stamp, known)


def _gauge(family: _Family, key: _Key, value: float, stamp: float, known: _File) -> None:
    series = (key.sample, key.labels)
    mode = known.mode.removeprefix("live")
    if mode == "mostrecent":  # a series never set (timestamp 0) is not shown, as upstream
        if family.stamps.get(series, 0.0) < stamp:
            family.values[series] = value
            family.stamps[series] = stamp
        return
    current = family.values.get(series)
    if current is None:
        family.values[series] = value
    elif mode == "sum":
        family.values[series] = current + value
    elif (mode == "min" and value < current) or (mode == "max" and value > current):
        family.values[series] = value


@functools.lru_cache(maxsize=1024)  # the buckets' bounds: a few dozen, the same every scrape
def _bound_text(bound: float) -> str:
    return go_float(bound)


def _cumulate(name: str, family: _Family) -> None:
    """Buckets made cumulative in `le` order, and `_count` from them, as prometheus-client does."""
    for labels, buckets in family.buckets.items():
        total = 0.0
        for bound, value in sorted(buckets.items()):
            total += value
            family.values[(name + "_bucket", (*labels, ("le", _bound_text(bound))))] = total
        family.values[(name + "_count", labels)] = total


_Accumulate = Callable[[_Family, _Key, float, float, _File], None]
_ACCUMULATE: Final[dict[str, _Accumulate]] = {
    "counter": _summed,
    "summary": _summed,
    "histogram": _histogram,
    "gauge": _gauge,
}
