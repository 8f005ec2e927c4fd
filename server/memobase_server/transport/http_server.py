"""Hosts an ASGI app (the REST gateway) with uvicorn inside our event loop."""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import Awaitable, Callable, Iterator
from typing import cast

import uvicorn
from uvicorn._types import ASGIApplication


class _EmbeddedUvicorn(uvicorn.Server):
    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        # The application owns SIGTERM/SIGINT and stops every server in order.
        yield


class HttpServer:
    def __init__(self, app: Callable[..., Awaitable[None]]) -> None:
        config = uvicorn.Config(
            cast(ASGIApplication, app),
            lifespan="off",
            access_log=False,
            log_config=None,
            http="httptools",
            loop="none",
            timeout_graceful_shutdown=10,
            backlog=4096,
        )
        self._server = _EmbeddedUvicorn(config)
        self._task: asyncio.Task[None] | None = None
        self.port = 0

    async def start(self, host: str, port: int) -> int:
        sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            sock.close()
            raise
        self.port = sock.getsockname()[1]
        self._task = asyncio.create_task(self._server.serve(sockets=[sock]))
        while not self._server.started:
            if self._task.done():
                await self._task
                raise OSError(f"the HTTP server on {host}:{port} stopped at start-up")
            await asyncio.sleep(0.01)
        return self.port

    async def stop(self) -> None:
        if self._task is None:
            return
        self._server.should_exit = True
        await self._task
        self._task = None
