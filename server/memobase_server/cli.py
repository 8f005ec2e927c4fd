"""Command line: `memobase-server serve | check-config`."""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import sys
from pathlib import Path

import uvloop

from memobase_server import admin
from memobase_server.app import Application, RestGateway
from memobase_server.config.loader import ConfigError, load_settings
from memobase_server.config.settings import Settings
from memobase_server.devtools import scripted_llm
from memobase_server.domain.models import ROOT_PROJECT_ID
from memobase_server.logs import configure_logging

log = logging.getLogger("memobase")


def _stop_signal() -> asyncio.Event:
    stop_requested = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop_requested.set)
    return stop_requested


async def _serve(settings: Settings) -> None:
    app = Application(settings)
    stop_requested = _stop_signal()
    await app.start()
    log.info("ready (gRPC %d, REST %d)", app.grpc_port, app.http_port)
    await stop_requested.wait()
    await app.stop()


async def _worker(settings: Settings) -> None:
    app = Application(settings)
    stop_requested = _stop_signal()
    await app.start_worker()
    log.info("flush worker ready (%d concurrent flushes)", settings.flush_workers)
    await stop_requested.wait()
    await app.stop()


async def _admin(settings: Settings, args: argparse.Namespace) -> int:
    app = Application(settings)
    await app.start_admin()
    try:
        if args.command == "import-chats":
            return await admin.import_chats(app, Path(args.file), args.project, flush=args.flush)
        return await admin.reprocess_failed(app, args.project)
    finally:
        await app.stop()


async def _scripted_llm(host: str, port: int) -> None:
    stop_requested = _stop_signal()
    server = await scripted_llm.serve(host, port)
    log.info("scripted LLM on http://%s:%d/v1", host, server.port)
    await stop_requested.wait()
    await server.stop()


async def _gateway(settings: Settings) -> None:
    if not settings.gateway_grpc_target:
        raise ConfigError(
            "config field 'gateway_grpc_target' (env MEMOBASE_GATEWAY_GRPC_TARGET): "
            "a standalone gateway needs the host:port of a gRPC server"
        )
    gateway = RestGateway(settings)
    stop_requested = _stop_signal()
    await gateway.start(settings.gateway_grpc_target)
    await stop_requested.wait()
    await gateway.stop()


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="memobase-server",
        description="Long-term user memory for LLM applications: gRPC + Memobase REST API.",
    )
    parser.add_argument(
        "--config", help="path of config.yaml (default: $MEMOBASE_CONFIG or ./config.yaml)"
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    commands.add_parser("serve", help="run the gRPC server and the REST gateway")
    commands.add_parser(
        "worker", help="run flush workers only (scale out: any number of worker processes)"
    )
    scripted = commands.add_parser(
        "scripted-llm",
        help="run the scripted OpenAI-compatible LLM (deterministic, for tests and local trials)",
    )
    scripted.add_argument("--host", default="127.0.0.1")
    scripted.add_argument("--port", type=int, default=8021)
    commands.add_parser(
        "gateway",
        help="run only the REST gateway, calling the gRPC server at gateway_grpc_target",
    )
    bulk = commands.add_parser(
        "import-chats",
        help="import chats from a JSON-lines file ({user_id, messages} per line), with progress",
    )
    bulk.add_argument("file", help="the JSON-lines file")
    bulk.add_argument("--project", default=ROOT_PROJECT_ID, help="project id (default: root)")
    bulk.add_argument("--flush", action="store_true", help="flush each user afterwards")
    again = commands.add_parser(
        "reprocess-failed", help="flush every buffer holding failed chats again, with progress"
    )
    again.add_argument("--project", default=None, help="only this project (default: all)")
    commands.add_parser("check-config", help="validate the configuration and print it")
    commands.add_parser(
        "mcp", help="run the Memobase MCP server (needs memobase-grpc-client[mcp]; mcp --help)"
    )
    return parser


def _mcp(argv: list[str]) -> int:
    """`memobase-server mcp ...` is `memobase-mcp ...` (the client package's MCP server)."""
    try:
        from memobase_grpc.mcp.__main__ import main as mcp_main  # noqa: PLC0415
    except ImportError as exc:
        print(f"memobase-server: {exc}", file=sys.stderr)
        return 2
    result: int = mcp_main(argv)
    return result


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["mcp"]:
        return _mcp(argv[1:])
    args = _parser().parse_args(argv)
    if args.command == "scripted-llm":
        configure_logging("plain", "INFO")
        uvloop.run(_scripted_llm(args.host, args.port))
        return 0
    try:
        settings = load_settings(args.config)
        if args.command == "check-config":
            print(settings.model_dump_json(indent=2))
            return 0
        configure_logging(settings.log_format, settings.log_level)
        if args.command in ("import-chats", "reprocess-failed"):
            failures = uvloop.run(_admin(settings, args))
            return 1 if failures else 0
        runners = {"serve": _serve, "worker": _worker, "gateway": _gateway}
        uvloop.run(runners[args.command](settings))
    except ConfigError as exc:
        print(f"memobase-server: configuration error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
