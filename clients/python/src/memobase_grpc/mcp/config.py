"""The MCP server's settings, read from the environment."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal, TypeAlias, cast, get_args

Transport: TypeAlias = Literal["both", "streamable-http", "sse", "stdio"]
FlushMode: TypeAlias = Literal["background", "sync", "off"]


class ConfigError(ValueError):
    """A setting is missing or has a bad value; the message names the variable."""


@dataclass(frozen=True)
class MCPSettings:
    """Where the memobase server is, and how the MCP server is served.

    | variable | default | meaning |
    |---|---|---|
    | `MEMOBASE_GRPC_TARGET` | `127.0.0.1:50051` | the memobase server's gRPC address |
    | `MEMOBASE_API_KEY` (or `MEMOBASE_TOKEN`, `ACCESS_TOKEN`) | required | a token |
    | `MEMOBASE_GRPC_TIMEOUT` | `30` | deadline of each call, in seconds |
    | `MCP_HOST` | `127.0.0.1` | address to listen on (`0.0.0.0` for every interface) |
    | `MCP_PORT` | `8050` | port to listen on |
    | `MCP_TRANSPORT` | `both` | `both` (`/mcp` and `/sse`), `streamable-http`, `sse`, `stdio` |
    | `MCP_DEFAULT_USER` | `user` | whose memory tools use when no `user_id` is given |
    | `MCP_FLUSH` | `background` | after `save_memory`: `background`, `sync` or `off` |
    """

    token: str
    grpc_target: str = "127.0.0.1:50051"
    timeout: float = 30.0
    host: str = "127.0.0.1"
    port: int = 8050
    transport: Transport = "both"
    default_user: str = "user"
    flush: FlushMode = "background"

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> MCPSettings:
        env = os.environ if env is None else env

        def text(name: str, default: str) -> str:
            return env.get(name, "").strip() or default

        token = text("MEMOBASE_API_KEY", "") or text("MEMOBASE_TOKEN", "")
        token = token or text("ACCESS_TOKEN", "")
        if not token:
            raise ConfigError("MEMOBASE_API_KEY (or ACCESS_TOKEN) is required: a memobase token")
        try:
            timeout = float(text("MEMOBASE_GRPC_TIMEOUT", "30"))
        except ValueError:
            raise ConfigError("MEMOBASE_GRPC_TIMEOUT must be a number of seconds") from None
        if timeout <= 0:
            raise ConfigError("MEMOBASE_GRPC_TIMEOUT must be positive")
        try:
            port = int(text("MCP_PORT", "8050"))
        except ValueError:
            raise ConfigError("MCP_PORT must be a port number") from None
        if not 0 < port < 65536:
            raise ConfigError("MCP_PORT must be a port number")
        transport = text("MCP_TRANSPORT", "both")
        if transport not in get_args(Transport):
            raise ConfigError(f"MCP_TRANSPORT must be one of {', '.join(get_args(Transport))}")
        flush = text("MCP_FLUSH", "background")
        if flush not in get_args(FlushMode):
            raise ConfigError(f"MCP_FLUSH must be one of {', '.join(get_args(FlushMode))}")
        return cls(
            token=token,
            grpc_target=text("MEMOBASE_GRPC_TARGET", "127.0.0.1:50051"),
            timeout=timeout,
            host=text("MCP_HOST", "127.0.0.1"),
            port=port,
            transport=cast(Transport, transport),
            default_user=text("MCP_DEFAULT_USER", "user"),
            flush=cast(FlushMode, flush),
        )
