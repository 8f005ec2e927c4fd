"""The Memobase MCP server (needs the `mcp` extra: `pip install 'memobase-grpc-client[mcp]'`).

Run it with `memobase-mcp` or `python -m memobase_grpc.mcp`; see `MCPSettings` for the
environment it reads.
"""

from __future__ import annotations

try:
    import mcp as _mcp_sdk  # noqa: F401
except ImportError as exc:  # pragma: no cover - depends on the installation
    raise ImportError(
        "memobase_grpc.mcp needs the `mcp` extra: pip install 'memobase-grpc-client[mcp]'"
    ) from exc

from memobase_grpc.mcp.config import ConfigError, MCPSettings
from memobase_grpc.mcp.server import MemobaseTools, build_server, create_app, serve

__all__ = ["ConfigError", "MCPSettings", "MemobaseTools", "build_server", "create_app", "serve"]
