"""``python -m memobase_server.devtools.scripted_llm [--host H] [--port P]``: serves the
scripted model until SIGINT or SIGTERM."""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal

from memobase_server.devtools.scripted_llm.app import build_scripted_llm_app, serve


async def _run(host: str, port: int, model_name: str) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    server = await serve(host, port, app=build_scripted_llm_app(model_name=model_name))
    print(f"scripted LLM serving on {server.base_url}", flush=True)
    try:
        await stop.wait()
    finally:
        await server.stop()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m memobase_server.devtools.scripted_llm",
        description="A deterministic OpenAI-compatible server for tests and local trials.",
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8021, help="0 picks a free port")
    parser.add_argument("--model-name", default="scripted-llm")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    asyncio.run(_run(args.host, args.port, args.model_name))


if __name__ == "__main__":
    main()
