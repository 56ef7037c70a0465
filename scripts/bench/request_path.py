"""The project's modules a POST /predict enters: how much there is to read to follow one request.

    python -m scripts.bench.request_path [--list]

Builds the service as `create_app` does with its default settings (the record of predictions in
a temporary folder), runs its startup, answers one /predict (the docs page's benign example) to
warm it, then answers a second under `sys.setprofile` and prints the status and how many of the
project's modules (under app/ and model/) a Python function was called in, on the event loop's
thread; with --list, which. Imports and startup are not counted; the record's writer thread is
not either (the request hands it the record and awaits its commit).
"""

import asyncio
import sys
import tempfile
from pathlib import Path
from types import FrameType
from typing import Any, Final

from app.core.config import Settings
from app.main import create_app
from model.artifact import DEFAULT_ARTIFACT_PATH
from scripts.bench.asgi import request, scope
from scripts.cli import OneLineParser

ROOT: Final = Path(__file__).resolve().parents[2]
PACKAGES: Final = tuple(f"{ROOT / name}/" for name in ("app", "model"))


class Lifespan:
    """An ASGI app's lifespan, driven a step at a time: `await step("startup")`, then
    `await step("shutdown")`."""

    def __init__(self, app: Any) -> None:
        self.events: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self.replies: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        scope = {"type": "lifespan", "asgi": {"version": "3.0"}}
        self.task = asyncio.create_task(app(scope, self.events.get, self.replies.put))

    async def step(self, name: str) -> None:
        await self.events.put({"type": f"lifespan.{name}"})
        message = await self.replies.get()
        if message["type"] != f"lifespan.{name}.complete":
            raise SystemExit(f"scripts.bench.request_path: {name} failed: {message}")
        if name == "shutdown":
            await self.task


async def traced_predict(app: Any) -> tuple[int, set[str]]:
    """The status of a second /predict to `app`, and the project's modules it entered (paths
    relative to the repository, `app/middleware/observed.py`)."""
    lifespan = Lifespan(app)
    await lifespan.step("startup")
    template = scope(api_key=False)
    await request(app, template)
    entered: set[str] = set()

    def profile(frame: FrameType, event: str, arg: object) -> None:
        if event == "call" and frame.f_code.co_filename.startswith(PACKAGES):
            entered.add(frame.f_code.co_filename)

    sys.setprofile(profile)
    try:
        status = await request(app, template)
    finally:
        sys.setprofile(None)
    await lifespan.step("shutdown")
    return status, {str(Path(name).relative_to(ROOT)) for name in entered}


def modules_of_predict() -> tuple[int, list[str]]:
    """The status of a /predict to the service with its default settings, and the project's
    modules it entered, sorted."""
    with tempfile.TemporaryDirectory() as record_dir:
        settings = Settings.model_validate(
            {"model_path": DEFAULT_ARTIFACT_PATH, "record_dir": record_dir}
        )
        status, entered = asyncio.run(traced_predict(create_app(settings)))
    return status, sorted(entered)


def main() -> int:
    p = OneLineParser(prog="scripts.bench.request_path", description=__doc__.splitlines()[0])
    p.add_argument("--list", action="store_true", help="also name the modules")
    args = p.parse_args()
    with tempfile.TemporaryFile("w") as log:  # the access log
        saved, sys.stderr = sys.stderr, log
        try:
            status, modules = modules_of_predict()
        finally:
            sys.stderr = saved
    print(f"POST /predict answered {status}, entering {len(modules)} of the project's modules")
    if args.list:
        print("\n".join(modules))
    return 0 if status == 200 else 1


if __name__ == "__main__":
    sys.exit(main())
