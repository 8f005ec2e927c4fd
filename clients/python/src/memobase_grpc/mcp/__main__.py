"""`memobase-mcp` / `python -m memobase_grpc.mcp`: runs the Memobase MCP server."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import logging
import sys
from typing import get_args

from memobase_grpc.mcp.config import ConfigError, MCPSettings, Transport
from memobase_grpc.mcp.server import serve


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="memobase-mcp",
        description=(
            "MCP server with long-term memory tools (save_memory, search_memories, "
            "get_user_profiles) backed by memobase-server. Configured by the environment: "
            "MEMOBASE_GRPC_TARGET, MEMOBASE_API_KEY (or MEMOBASE_TOKEN, ACCESS_TOKEN), "
            "MEMOBASE_GRPC_TIMEOUT, "
            "MCP_HOST, MCP_PORT, MCP_TRANSPORT, MCP_DEFAULT_USER, MCP_FLUSH; "
            "the options below override it."
        ),
    )
    parser.add_argument("--transport", choices=get_args(Transport), help="default: both")
    parser.add_argument("--host", help="default: 127.0.0.1")
    parser.add_argument("--port", type=int, help="default: 8050")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        settings = MCPSettings.from_env()
    except ConfigError as exc:
        print(f"memobase-mcp: configuration error: {exc}", file=sys.stderr)
        return 2
    overrides = {k: v for k, v in vars(args).items() if v is not None}
    settings = dataclasses.replace(settings, **overrides)
    # stdout carries the protocol on stdio: logs go to stderr.
    logging.basicConfig(level=logging.INFO, stream=sys.stderr)
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(serve(settings))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
