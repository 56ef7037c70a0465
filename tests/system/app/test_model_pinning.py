"""One model per service: `python -m app` pins the artifact it verified at startup.

With 2 workers, the artifact file is overwritten by another valid model, then corrupted, and
each time a worker is killed (SIGKILL) so that uvicorn respawns it. Every /health answer during
all of it carries the pinned version, the service never stops answering, and the respawned
workers say they serve the pinned model. Only a restart serves the new file. MODEL_SHA256 pins
the expected content hash: a different artifact refuses to start.
"""

import itertools
import json
import os
import signal
import threading
import time
from pathlib import Path
from typing import Final

import httpx
import psutil
import pytest

from app.server.exposition import PROCESS_NAME as METRICS_PROCESS_NAME
from model.artifact import DEFAULT_ARTIFACT_PATH, content_hash, load_artifact
from tests.live_server import LiveServer, run_server, start_server

PINNED: Final = load_artifact(DEFAULT_ARTIFACT_PATH).content_sha256
RESPAWN_TIMEOUT: Final = 60.0
SAMPLES: Final = 40

pytestmark = pytest.mark.slow


def other_model(path: Path) -> str:
    """Write a valid artifact with another content hash (another default threshold)."""
    payload = json.loads(DEFAULT_ARTIFACT_PATH.read_text())
    payload["default_threshold"] = 0.5
    payload["content_sha256"] = content_hash(payload)
    path.write_text(json.dumps(payload))
    return str(payload["content_sha256"])


def workers(server: LiveServer) -> list[psutil.Process]:
    children = psutil.Process(server.process.pid).children()
    return [
        c
        for c in children
        if "spawn_main" in " ".join(c.cmdline()) and c.name() != METRICS_PROCESS_NAME
    ]


def started(server: LiveServer) -> int:
    return server.stderr().count("Application startup complete")


def kill_a_worker_and_wait_for_its_replacement(server: LiveServer) -> None:
    before = started(server)
    victim = workers(server)[0]
    os.kill(victim.pid, signal.SIGKILL)
    deadline = time.monotonic() + RESPAWN_TIMEOUT
    while started(server) <= before or victim.pid in [w.pid for w in workers(server)]:
        assert server.returncode is None, server.stderr()
        assert time.monotonic() < deadline, f"no replacement worker:\n{server.stderr()}"
        time.sleep(0.1)


class Poller(threading.Thread):
    """Asks /health on a new connection each time (so both workers answer) until stopped."""

    def __init__(self, url: str) -> None:
        super().__init__(daemon=True)
        self.url = url
        self.stop = threading.Event()
        self.answers: list[tuple[float, str]] = []  # (when, model_version)
        self.failures = 0  # requests the killed worker had accepted: reset, never wrong

    def run(self) -> None:
        while not self.stop.is_set():
            try:
                answer = httpx.get(f"{self.url}/health", timeout=5)
                self.answers.append((time.monotonic(), answer.json()["model_version"]))
            except httpx.TransportError:
                self.failures += 1
            time.sleep(0.01)

    def longest_gap(self) -> float:
        times = [t for t, _ in self.answers]
        return max(b - a for a, b in itertools.pairwise(times))


def versions(server: LiveServer) -> set[str]:
    return {httpx.get(f"{server.url}/health").json()["model_version"] for _ in range(SAMPLES)}


def test_every_worker_serves_the_pinned_model_whatever_happens_to_the_file(
    tmp_path: Path,
) -> None:
    path = tmp_path / "weights.json"
    path.write_bytes(DEFAULT_ARTIFACT_PATH.read_bytes())
    with start_server({"MODEL_PATH": str(path)}, workers=2) as server:
        while started(server) < 2:
            time.sleep(0.05)
        poller = Poller(server.url)
        poller.start()
        try:
            new_version = other_model(path)
            kill_a_worker_and_wait_for_its_replacement(server)
            assert versions(server) == {PINNED[:12]}
            path.write_bytes(b'{"truncated": ')  # corrupt
            kill_a_worker_and_wait_for_its_replacement(server)
            assert versions(server) == {PINNED[:12]}
        finally:
            poller.stop.set()
            poller.join()
        assert server.returncode is None  # still serving
        log = server.stderr()
    assert {version for _, version in poller.answers} == {PINNED[:12]}
    assert poller.longest_gap() < 5.0, poller.longest_gap()
    assert log.count(f"serving model {PINNED[:12]} from {path} (pinned at startup)") == 4, log
    assert "Traceback" not in log
    print(
        f"\n{len(poller.answers)} /health answers, all {PINNED[:12]}; {poller.failures} reset "
        f"by the killed workers; longest gap {poller.longest_gap():.2f} s"
    )

    # Rolling out the new model is a restart (the file holds it again).
    other_model(path)
    with start_server({"MODEL_PATH": str(path)}) as restarted:
        assert versions(restarted) == {new_version[:12]}


def test_model_sha256_setting_accepts_the_pinned_artifact() -> None:
    with start_server({"MODEL_SHA256": PINNED.upper()}) as server:
        assert versions(server) == {PINNED[:12]}


def test_model_sha256_setting_refuses_another_artifact(tmp_path: Path) -> None:
    path = tmp_path / "other.json"
    found = other_model(path)
    with run_server({"MODEL_PATH": str(path), "MODEL_SHA256": PINNED}, workers=2) as server:
        code = server.process.wait(30)
    log = server.stderr().strip()
    assert code == 1, log
    assert log.splitlines() == [
        f"malignancy-predictor: cannot load the model: {path}: content hash {found} is not the "
        f"one MODEL_SHA256 pins ({PINNED})"
    ]
