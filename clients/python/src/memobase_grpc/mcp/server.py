"""The Memobase MCP server: long-term memory tools for MCP clients (Claude Desktop, Cursor,
Windsurf), on the official `mcp` SDK, talking to memobase-server through the async client.

Tools:
- `save_memory(content, user_id?)`: stores the text as a chat message of the user, then flushes
  (in the background by default) so that it becomes profile slots, an event and gists.
- `search_memories(query, user_id?, top_k?)`: semantic search over the user's event gists.
- `get_user_profiles(user_id?)`: the user's profile, one `topic::sub_topic: content` line each.

`user_id` is any string: UUIDs are used as they are, anything else maps to a stable UUID v5
(as the official SDK does); the user is created on first use. Without it, tools use
`MCP_DEFAULT_USER`.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Annotated

import uvicorn
from mcp.server.mcpserver import MCPServer
from mcp.server.mcpserver.exceptions import ToolError
from pydantic import Field
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

from memobase_grpc import errors
from memobase_grpc.aio import AsyncMemobaseClient, AsyncUser
from memobase_grpc.ids import as_user_id
from memobase_grpc.mcp.config import MCPSettings
from memobase_grpc.types import ChatBlob, UserEventGist, UserProfile

log = logging.getLogger("memobase_grpc.mcp")

NAME = "memobase-mcp"
INSTRUCTIONS = (
    "Long-term memory about the user. Call save_memory when the user shares something worth "
    "remembering (facts, preferences, plans); call search_memories to recall something "
    "specific, and get_user_profiles for an overall picture of the user."
)

UserIdArg = Annotated[
    str | None,
    Field(description="Whose memory: any stable string (omit it for the default user)."),
]


def format_profiles(profiles: list[UserProfile]) -> str:
    if not profiles:
        return "No profile yet for this user."
    return "\n".join(f"- {p.topic}::{p.sub_topic}: {p.content}" for p in profiles)


def format_gists(gists: list[UserEventGist]) -> str:
    if not gists:
        return "No matching memories."
    lines = []
    for g in gists:
        day = f"[{g.created_at.date().isoformat()}] " if g.created_at else ""
        score = f" (similarity {g.similarity:.2f})" if g.similarity is not None else ""
        lines.append(f"- {day}{g.content.removeprefix('- ')}{score}")
    return "\n".join(lines)


class MemobaseTools:
    """The tools' behaviour, over one client; users are looked up once and then remembered."""

    def __init__(self, client: AsyncMemobaseClient, settings: MCPSettings) -> None:
        self.client = client
        self.settings = settings
        self._known: set[str] = set()
        self._lock = asyncio.Lock()

    async def user(self, user_id: str | None) -> AsyncUser:
        uid = as_user_id(user_id or self.settings.default_user)
        if uid not in self._known:
            async with self._lock:
                if uid not in self._known:
                    await self.client.get_or_create_user(uid)
                    self._known.add(uid)
        return await self.client.get_user(uid, no_get=True)

    async def save_memory(self, content: str, user_id: str | None = None) -> str:
        if not content.strip():
            raise ToolError("Nothing to save: content is empty.")
        try:
            user = await self.user(user_id)
            await user.insert(ChatBlob(messages=[{"role": "user", "content": content}]))
        except errors.MemobaseError as exc:
            raise ToolError(f"Could not save the memory: {exc.message}") from exc
        saved = f"Saved to memory: {content[:100]}{'...' if len(content) > 100 else ''}"
        mode = self.settings.flush
        if mode == "off":
            return f"{saved}\nIt will be processed with the user's next flush."
        try:
            await user.flush(sync=mode == "sync")
        except errors.MemobaseError as exc:
            return f"{saved}\nIt is stored, but processing it failed for now: {exc.message}"
        if mode == "sync":
            return f"{saved}\nThe user's profile and timeline are updated."
        return f"{saved}\nIt is being processed into the user's profile and timeline."

    async def search_memories(self, query: str, user_id: str | None = None, top_k: int = 10) -> str:
        try:
            user = await self.user(user_id)
            gists = await user.search_event_gist(query, topk=top_k)
        except errors.MemobaseError as exc:
            raise ToolError(f"Could not search memories: {exc.message}") from exc
        return format_gists(gists)

    async def get_user_profiles(self, user_id: str | None = None) -> str:
        try:
            user = await self.user(user_id)
            profiles = await user.profile(max_token_size=2000)
        except errors.MemobaseError as exc:
            raise ToolError(f"Could not read the profile: {exc.message}") from exc
        return format_profiles(profiles)


def build_server(tools: MemobaseTools) -> MCPServer:
    """The MCP server with the three tools."""
    server = MCPServer(NAME, instructions=INSTRUCTIONS, version="0.1.0")

    async def save_memory(
        content: Annotated[
            str, Field(description="What to remember, as a plain statement or in the user's words.")
        ],
        user_id: UserIdArg = None,
    ) -> str:
        """Save information to the user's long-term memory.

        Use it for anything worth remembering about the user: facts, preferences, plans,
        events. The text is processed into the user's profile and timeline, where
        search_memories and get_user_profiles find it.
        """
        return await tools.save_memory(content, user_id)

    async def search_memories(
        query: Annotated[str, Field(description="What to look for, in natural language.")],
        user_id: UserIdArg = None,
        top_k: Annotated[int, Field(ge=1, le=100, description="At most this many results.")] = 10,
    ) -> str:
        """Search the user's memories (facts from past conversations) by meaning.

        Call it when the user asks you to recall something, or when a past detail would help.
        """
        return await tools.search_memories(query, user_id, top_k)

    async def get_user_profiles(user_id: UserIdArg = None) -> str:
        """Get the user's full profile: everything known about them, by topic and sub-topic.

        Call it when the user asks what you know about them, or for a complete picture.
        """
        return await tools.get_user_profiles(user_id)

    for tool in (save_memory, search_memories, get_user_profiles):
        server.add_tool(tool, structured_output=False)
    return server


async def _health(request: Request) -> Response:
    return PlainTextResponse("ok")


def create_app(settings: MCPSettings, client: AsyncMemobaseClient | None = None) -> Starlette:
    """The ASGI app: streamable HTTP on `/mcp`, SSE on `/sse` (+ `/messages/`), or both, and
    `/health`. The client is closed when the app shuts down."""
    if settings.transport == "stdio":
        raise ValueError("the stdio transport has no HTTP app")
    client = client or AsyncMemobaseClient(
        settings.grpc_target, settings.token, timeout=settings.timeout
    )
    server = build_server(MemobaseTools(client, settings))
    if settings.transport == "sse":
        app = server.sse_app(host=settings.host)
    else:
        app = server.streamable_http_app(host=settings.host)
        if settings.transport == "both":
            app.router.routes.extend(server.sse_app(host=settings.host).routes)
    app.router.routes.append(Route("/health", _health, methods=["GET"]))

    inner = app.router.lifespan_context

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        if not await client.ping():
            log.warning("memobase server at %s does not answer yet", settings.grpc_target)
        async with inner(app):
            try:
                yield
            finally:
                await client.close()

    app.router.lifespan_context = lifespan
    return app


async def serve(settings: MCPSettings) -> None:
    """Serves the MCP server with the configured transport until cancelled."""
    if settings.transport == "stdio":
        async with AsyncMemobaseClient(
            settings.grpc_target, settings.token, timeout=settings.timeout
        ) as client:
            await build_server(MemobaseTools(client, settings)).run_stdio_async()
        return
    app = create_app(settings)
    config = uvicorn.Config(app, host=settings.host, port=settings.port, log_level="info")
    await uvicorn.Server(config).serve()
