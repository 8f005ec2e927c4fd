"""The Memobase MCP server (`memobase_grpc.mcp`), run as `memobase-mcp` in a child process
against the test stack and driven by the MCP SDK's own client over streamable HTTP, SSE and
stdio."""

from __future__ import annotations

import os
import pathlib
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass

import httpx
import pytest
from mcp import Client, StdioServerParameters
from mcp.client.sse import sse_client
from mcp.types import CallToolResult, TextContent

from memobase_grpc import MemobaseClient, as_user_id
from memobase_grpc.mcp import ConfigError, MCPSettings
from tests import servers
from tests.conftest import ScriptedLLM, Stack, eventually, stop_server

TOOLS = {"save_memory", "search_memories", "get_user_profiles"}


@dataclass
class McpServer:
    url: str
    process: subprocess.Popen[bytes]
    log_path: pathlib.Path


def start_mcp(workdir: pathlib.Path, **env: str) -> McpServer:
    port = servers.free_port()
    log_path = workdir / f"mcp-{port}.log"
    child_env = {**os.environ, "MCP_HOST": "127.0.0.1", "MCP_PORT": str(port), **env}
    with log_path.open("ab") as log:
        process = subprocess.Popen(
            [str(pathlib.Path(sys.executable).parent / "memobase-mcp")],  # the entry point
            env=child_env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while True:
        try:
            if httpx.get(f"{url}/health", timeout=1).text == "ok":
                return McpServer(url, process, log_path)
        except httpx.HTTPError:
            pass
        if process.poll() is not None or time.monotonic() > deadline:
            process.kill()
            process.wait()
            raise RuntimeError(f"MCP server failed to start:\n{log_path.read_text()[-4000:]}")
        time.sleep(0.1)


@pytest.fixture(scope="module")
def mcp_server(stack: Stack, workdir: pathlib.Path) -> Iterator[McpServer]:
    server = start_mcp(
        workdir,
        MEMOBASE_GRPC_TARGET=stack.grpc_target,
        MEMOBASE_API_KEY=stack.root_token,
        MCP_TRANSPORT="both",
    )
    yield server
    stop_server(server.process)


def text(result: CallToolResult) -> str:
    assert not result.is_error, result.content
    return "\n".join(c.text for c in result.content if isinstance(c, TextContent))


async def test_saved_memory_is_searchable_and_in_the_profile(
    stack: Stack, mcp_server: McpServer, llm: ScriptedLLM
) -> None:
    user_id = f"mcp-user-{uuid.uuid4().hex[:8]}"
    async with Client(f"{mcp_server.url}/mcp") as client:
        tools = {t.name: t for t in (await client.list_tools()).tools}
        assert set(tools) == TOOLS
        assert set(tools["save_memory"].input_schema["required"]) == {"content"}
        assert "user_id" in tools["search_memories"].input_schema["properties"]

        saved = await client.call_tool(
            "save_memory",
            {"user_id": user_id, "content": "My name is Ada and I live in London."},
        )
        assert "Saved to memory: My name is Ada" in text(saved)

        answers: list[str] = []

        async def found() -> bool:
            reply = await client.call_tool(
                "search_memories", {"user_id": user_id, "query": "I live in London", "top_k": 3}
            )
            answers.append(text(reply))
            return "I live in London" in answers[-1]

        try:
            await eventually(found)  # the background flush ran and the gist is indexed
        except AssertionError:
            raise AssertionError(f"search_memories kept answering {answers[-1]!r}") from None
        assert answers[-1].startswith("- [")  # "- [date] fact (similarity 0.xx)"
        profile = text(await client.call_tool("get_user_profiles", {"user_id": user_id}))
        assert "- basic_info::name: Ada" in profile
        assert "- contact_info::city: London" in profile

    # The string id maps to the UUID v5 the official SDK derives; the user now exists.
    with MemobaseClient(stack.grpc_target, stack.root_token) as memobase:
        user = memobase.get_user(as_user_id(user_id))
        assert {p.content for p in user.profile()} == {"Ada", "London"}


async def test_sse_transport_and_the_default_user(mcp_server: McpServer, llm: ScriptedLLM) -> None:
    async with Client(sse_client(f"{mcp_server.url}/sse")) as client:
        assert {t.name for t in (await client.list_tools()).tools} == TOOLS
        profile = await client.call_tool("get_user_profiles", {})
        assert text(profile) == "No profile yet for this user."
        nothing = await client.call_tool(
            "search_memories", {"query": "quantum chromodynamics", "user_id": str(uuid.uuid4())}
        )
        assert text(nothing) == "No matching memories."
        empty = await client.call_tool("save_memory", {"content": "  "})
        assert empty.is_error


async def test_stdio_transport(stack: Stack, llm: ScriptedLLM) -> None:
    """Claude Desktop starts local servers as a command and talks over stdin / stdout."""
    params = StdioServerParameters(
        command=sys.executable,
        args=["-m", "memobase_grpc.mcp", "--transport", "stdio"],
        env={
            **os.environ,
            "MEMOBASE_GRPC_TARGET": stack.grpc_target,
            "MEMOBASE_API_KEY": stack.root_token,
            "MCP_FLUSH": "sync",
        },
    )
    user_id = f"stdio-{uuid.uuid4().hex[:8]}"
    async with Client(params) as client:
        assert {t.name for t in (await client.list_tools()).tools} == TOOLS
        saved = await client.call_tool(
            "save_memory", {"content": "I live in Paris.", "user_id": user_id}
        )
        assert "profile and timeline are updated" in text(saved)
        profile = await client.call_tool("get_user_profiles", {"user_id": user_id})
        assert text(profile) == "- contact_info::city: Paris"


README_MCP_CLIENT = """\
import asyncio

from mcp import Client


async def main() -> None:
    async with Client("http://127.0.0.1:8050/mcp") as client:
        print(sorted(t.name for t in (await client.list_tools()).tools))
        saved = await client.call_tool(
            "save_memory", {"user_id": "alice", "content": "I live in Lisbon."}
        )
        print(saved.content[0].text)


asyncio.run(main())
"""


def test_readme_mcp_example(
    mcp_server: McpServer, llm: ScriptedLLM, capsys: pytest.CaptureFixture[str]
) -> None:
    code = README_MCP_CLIENT.replace("http://127.0.0.1:8050", mcp_server.url)
    failures: list[BaseException] = []

    def run() -> None:  # asyncio.run in a thread of its own, away from the test's loop
        try:
            exec(compile(code, "README.md", "exec"), {"__name__": "__readme__"})
        except BaseException as exc:
            failures.append(exc)

    thread = threading.Thread(target=run)
    thread.start()
    thread.join(60)
    assert not failures, failures
    printed = capsys.readouterr().out.splitlines()
    assert printed[0] == "['get_user_profiles', 'save_memory', 'search_memories']"
    assert printed[1] == "Saved to memory: I live in Lisbon."


def test_settings_from_the_environment() -> None:
    settings = MCPSettings.from_env({"ACCESS_TOKEN": "t", "MCP_PORT": "9000"})
    assert (settings.token, settings.port, settings.transport) == ("t", 9000, "both")
    assert (settings.grpc_target, settings.host, settings.flush) == (
        "127.0.0.1:50051",
        "127.0.0.1",
        "background",
    )
    assert MCPSettings.from_env({"MEMOBASE_API_KEY": "k", "ACCESS_TOKEN": "t"}).token == "k"
    assert MCPSettings.from_env({"MEMOBASE_TOKEN": "m", "ACCESS_TOKEN": "t"}).token == "m"
    with pytest.raises(ConfigError, match="MEMOBASE_API_KEY"):
        MCPSettings.from_env({})
    with pytest.raises(ConfigError, match="MCP_TRANSPORT"):
        MCPSettings.from_env({"ACCESS_TOKEN": "t", "MCP_TRANSPORT": "carrier-pigeon"})
    with pytest.raises(ConfigError, match="MCP_PORT"):
        MCPSettings.from_env({"ACCESS_TOKEN": "t", "MCP_PORT": "http"})


def test_readme_shows_the_mcp_example_this_test_runs() -> None:
    readme = (pathlib.Path(__file__).resolve().parent.parent / "README.md").read_text()
    assert README_MCP_CLIENT in readme
