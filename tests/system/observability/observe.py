"""Helpers for the observability system tests: scrapes, access-log lines, processes, a tmpfs."""

import contextlib
import os
import re
import socket
import subprocess
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Final

import httpx
import psutil
import pytest
from prometheus_client.parser import text_string_to_metric_families

from app.server.exposition import PROCESS_NAME as METRICS_PROCESS_NAME
from tests.live_server import LiveServer

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]
# `2026-12-06 21:00:00,123 INFO app.access: POST /predict 200 0.42ms request_id=...`
ACCESS_LINE: Final = re.compile(r" INFO app\.access: (\S+) (\S+) (\d{3}) (\S+) request_id=(\S+)")


def scrape(server: LiveServer, timeout: float = 10.0) -> Samples:
    response = httpx.get(server.metrics_url, timeout=timeout)
    response.raise_for_status()
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(response.text)
        for sample in family.samples
    }


def total(found: Samples, name: str, **labels: str) -> float:
    """The sum of `name` over every series whose labels include `labels`."""
    wanted = set(labels.items())
    return sum(v for (n, ls), v in found.items() if n == name and wanted <= ls)


def by_label(found: Samples, name: str, *keys: str) -> Counter[tuple[str, ...]]:
    counts: Counter[tuple[str, ...]] = Counter()
    for (sample, labels), amount in found.items():
        if sample == name and amount:
            named = dict(labels)
            counts[tuple(named.get(key, "") for key in keys)] += int(amount)
    return counts


def access_statuses(log: str) -> Counter[int]:
    return Counter(int(match.group(3)) for match in ACCESS_LINE.finditer(log))


def wait_for(condition: Callable[[], bool], what: str, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"not within {timeout} s: {what}")
        time.sleep(0.05)


def wait_for_workers(server: LiveServer, workers: int, timeout: float = 60.0) -> None:
    wait_for(
        lambda: server.stderr().count("Application startup complete") >= workers,
        f"{workers} workers up:\n{server.stderr()}",
        timeout,
    )


def wait_for_metrics(server: LiveServer, timeout: float = 30.0) -> None:
    """Until the exposition answers (its process then has its name)."""

    def answers() -> bool:
        try:
            return httpx.get(server.metrics_url, timeout=5).status_code == 200
        except httpx.TransportError:
            return False

    wait_for(answers, "the exposition answering", timeout)


def children(server: LiveServer) -> list[psutil.Process]:
    found: list[psutil.Process] = psutil.Process(server.process.pid).children()
    return found


def worker_processes(server: LiveServer) -> list[psutil.Process]:
    """uvicorn's workers: the supervisor's live spawned children but the metrics server; with
    one worker, the server process itself."""
    spawned = []
    for child in children(server):
        with contextlib.suppress(psutil.ZombieProcess, psutil.NoSuchProcess):
            if "spawn_main" in " ".join(child.cmdline()) and child.name() != METRICS_PROCESS_NAME:
                spawned.append(child)
    return spawned or [psutil.Process(server.process.pid)]


def metrics_process(server: LiveServer) -> psutil.Process:
    found = [p for p in children(server) if p.name() == METRICS_PROCESS_NAME]
    assert len(found) == 1, found
    return found[0]


def listening_ports(process: psutil.Process) -> set[int]:
    return {c.laddr.port for c in process.net_connections("tcp") if c.status == psutil.CONN_LISTEN}


@contextmanager
def small_tmpfs(size: str = "64k") -> Iterator[Path]:
    """A real tmpfs of `size`, mounted for the test (root, and a kernel that allows it)."""
    with tempfile.TemporaryDirectory(prefix="obs-tmpfs-") as tmp:
        mounted = subprocess.run(
            ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", tmp],
            capture_output=True,
            text=True,
            check=False,
        )
        if mounted.returncode != 0:
            pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.strip()}")
        try:
            yield Path(tmp)
        finally:
            while os.path.ismount(tmp):  # a test may have stacked another mount on it
                subprocess.run(["umount", "-l", tmp], check=True)


def fill(directory: Path) -> int:
    """Write a file into `directory` until its filesystem is full; the bytes written."""
    written = 0
    chunk = b"\0" * 4096
    with (directory / "filler").open("wb", buffering=0) as filler:
        while True:
            try:
                written += filler.write(chunk)
            except OSError:
                break
    for small in (1024, 64, 1):  # the last part-page
        try:
            with (directory / "filler").open("ab", buffering=0) as filler:
                while True:
                    written += filler.write(b"\0" * small)
        except OSError:
            continue
    return written


def raw_exchange(port: int, data: bytes, wait: float = 5.0) -> bytes:
    """Send `data` on a new connection, half-close nothing, read until the server closes."""
    with socket.create_connection(("127.0.0.1", port), timeout=wait) as sock:
        sock.sendall(data)
        chunks = []
        try:
            while chunk := sock.recv(65536):
                chunks.append(chunk)
        except (TimeoutError, ConnectionResetError):
            pass
    return b"".join(chunks)


def status_of(raw: bytes) -> int | None:
    if not raw.startswith(b"HTTP/1.1 "):
        return None
    return int(raw[9:12])


def env_int(name: str, default: int) -> int:
    return int(os.environ.get(name, default))
