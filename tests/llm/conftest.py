"""The scripted OpenAI-compatible server, in-process on a free loopback port, and real
`openai.AsyncOpenAI` clients pointed at it."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx
import openai
import pytest_asyncio

from memobase_server.devtools.scripted_llm import ScriptedLLMServer, serve
from memobase_server.llm.chat import build_openai_client

ClientFactory = Callable[..., openai.AsyncOpenAI]


@pytest_asyncio.fixture(scope="session")
async def scripted_server() -> AsyncIterator[ScriptedLLMServer]:
    server = await serve("127.0.0.1", 0)
    try:
        yield server
    finally:
        await server.stop()


@pytest_asyncio.fixture
async def scripted(scripted_server: ScriptedLLMServer) -> AsyncIterator[ScriptedLLMServer]:
    """The server with no fault and empty statistics, for one test."""
    scripted_server.app.state.reset_faults()
    scripted_server.app.state.reset_stats()
    yield scripted_server
    scripted_server.app.state.reset_faults()


@pytest_asyncio.fixture
async def control(scripted: ScriptedLLMServer) -> AsyncIterator[httpx.AsyncClient]:
    """Plain HTTP to the server, for the `/_scripted/` control routes."""
    async with httpx.AsyncClient(base_url=scripted.url, timeout=10) as client:
        yield client


@pytest_asyncio.fixture
async def make_client(scripted: ScriptedLLMServer) -> AsyncIterator[ClientFactory]:
    """Builds openai clients for the server (max_retries 0 and a 10 s timeout unless told)."""
    clients: list[openai.AsyncOpenAI] = []

    def build(**overrides: Any) -> openai.AsyncOpenAI:
        options: dict[str, Any] = {"timeout_s": 10.0, "max_retries": 0}
        options.update(overrides)
        client = build_openai_client(scripted.base_url, "sk-test", **options)
        clients.append(client)
        return client

    yield build
    for client in clients:
        await client.close()
