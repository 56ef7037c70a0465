"""An app called in this process through httpx's ASGI transport, its lifespan run."""

import asyncio
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import fastapi
import httpx


class InProcess:
    """The app in this process, its lifespan run, called through httpx's ASGI transport."""

    def __init__(self, runner: asyncio.Runner, client: httpx.AsyncClient) -> None:
        self.runner = runner
        self.client = client

    def post(self, path: str, **kwargs: Any) -> httpx.Response:
        return self.runner.run(self.client.post(path, **kwargs))


@contextmanager
def in_process(service: fastapi.FastAPI) -> Iterator[InProcess]:
    transport = httpx.ASGITransport(app=service)
    with asyncio.Runner() as runner:
        lifespan = service.router.lifespan_context(service)
        runner.run(lifespan.__aenter__())
        client = httpx.AsyncClient(transport=transport, base_url="http://service")
        try:
            yield InProcess(runner, client)
        finally:
            runner.run(client.aclose())
            runner.run(lifespan.__aexit__(None, None, None))
