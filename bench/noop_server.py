"""The ceiling: a grpc.aio server with the real UserService and BlobService contracts whose
methods answer a canned response at once (no auth, no storage, no interceptors).

Run as ``python -m bench.noop_server --port N``; it listens on 127.0.0.1 only, stops on
SIGTERM/SIGINT, and exits by itself if the process that started it goes away.

With ``--http-port M`` it also answers REST on that port: the memory loop's Memobase routes
(``bench.cycle``) with a canned envelope at once, through the real server's HTTP hosting
(uvicorn + httptools, ``memobase_server.transport.http_server``) but no gateway, auth or
storage: the REST transport's ceiling.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import uuid
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any, NoReturn

import uvloop
from grpc import StatusCode, aio

from memobase_server.gen.memobase.v1 import blob_pb2, blob_pb2_grpc, user_pb2, user_pb2_grpc
from memobase_server.transport.http_server import HttpServer

Context = aio.ServicerContext[Any, Any]

HOST = "127.0.0.1"

_USER_TEMPLATE = user_pb2.GetUserResponse()
_USER_TEMPLATE.data.update({"name": "bench", "plan": "free"})
_USER_TEMPLATE.created_at.FromSeconds(1_700_000_000)
_USER_TEMPLATE.updated_at.FromSeconds(1_700_000_000)
_BLOB_ID = str(uuid.uuid4())


async def _unimplemented(context: Context) -> NoReturn:
    await context.abort(StatusCode.UNIMPLEMENTED, "not part of the no-op server")
    raise AssertionError("abort returned")  # pragma: no cover


class NoopUsers(user_pb2_grpc.UserServiceServicer):
    """Answers at once: CreateUser echoes the id, GetUser returns a small canned user."""

    async def CreateUser(  # noqa: N802 - generated method name
        self, request: user_pb2.CreateUserRequest, context: Context
    ) -> user_pb2.CreateUserResponse:
        return user_pb2.CreateUserResponse(id=request.id or _BLOB_ID)

    async def GetUser(  # noqa: N802
        self, request: user_pb2.GetUserRequest, context: Context
    ) -> user_pb2.GetUserResponse:
        response = user_pb2.GetUserResponse()
        response.CopyFrom(_USER_TEMPLATE)
        response.id = request.user_id
        return response

    async def UpdateUser(  # noqa: N802
        self, request: user_pb2.UpdateUserRequest, context: Context
    ) -> user_pb2.UpdateUserResponse:
        await _unimplemented(context)

    async def DeleteUser(  # noqa: N802
        self, request: user_pb2.DeleteUserRequest, context: Context
    ) -> user_pb2.DeleteUserResponse:
        await _unimplemented(context)


class NoopBlobs(blob_pb2_grpc.BlobServiceServicer):
    """InsertBlob answers a fixed blob id; the other methods are UNIMPLEMENTED."""

    async def InsertBlob(  # noqa: N802
        self, request: blob_pb2.InsertBlobRequest, context: Context
    ) -> blob_pb2.InsertBlobResponse:
        return blob_pb2.InsertBlobResponse(id=_BLOB_ID)

    async def GetBlob(  # noqa: N802
        self, request: blob_pb2.GetBlobRequest, context: Context
    ) -> blob_pb2.GetBlobResponse:
        await _unimplemented(context)

    async def DeleteBlob(  # noqa: N802
        self, request: blob_pb2.DeleteBlobRequest, context: Context
    ) -> blob_pb2.DeleteBlobResponse:
        await _unimplemented(context)

    async def ListBlobs(  # noqa: N802
        self, request: blob_pb2.ListBlobsRequest, context: Context
    ) -> blob_pb2.ListBlobsResponse:
        await _unimplemented(context)

    async def FlushBuffer(  # noqa: N802
        self, request: blob_pb2.FlushBufferRequest, context: Context
    ) -> blob_pb2.FlushBufferResponse:
        await _unimplemented(context)

    async def GetBufferCapacity(  # noqa: N802
        self, request: blob_pb2.GetBufferCapacityRequest, context: Context
    ) -> blob_pb2.GetBufferCapacityResponse:
        await _unimplemented(context)


# ---------------------------------------------------------------- REST (--http-port)

AsgiMessage = MutableMapping[str, Any]
AsgiReceive = Callable[[], Awaitable[AsgiMessage]]
AsgiSend = Callable[[AsgiMessage], Awaitable[None]]

REST_CONTEXT_CHARS = 2000
"""Length of the canned context: about what the real server answers for a user of
``bench.cycle``'s default workload (20 chat blobs) at ``max_token_size=1000``."""
_REST_CONTEXT = ("<memory>" + "The user lives in Lisbon and likes green tea. " * 60)[
    :REST_CONTEXT_CHARS
]


def _envelope(data: object, errno: int = 0, errmsg: str = "") -> bytes:
    return json.dumps(
        {"data": data, "errno": errno, "errmsg": errmsg}, separators=(",", ":")
    ).encode()


_REST_ANSWERS: dict[tuple[str, str], bytes] = {
    # (method, path prefix) -> canned body; POST /api/v1/users echoes the id it was given.
    ("POST", "/api/v1/blobs/insert/"): _envelope({"id": _BLOB_ID, "chat_results": []}),
    ("POST", "/api/v1/users/buffer/"): _envelope([]),
    ("GET", "/api/v1/users/context/"): _envelope({"context": _REST_CONTEXT}),
    ("DELETE", "/api/v1/users/"): _envelope(None),
    ("GET", "/api/v1/users/"): _envelope(
        {
            "data": {"name": "bench", "plan": "free"},
            "id": None,
            "created_at": "2023-11-14T22:13:20Z",
        }
    ),
}
_REST_NOT_FOUND = _envelope(None, 404, "not part of the no-op server")


def _rest_answer(method: str, path: str, body: bytes) -> tuple[int, bytes]:
    if method == "POST" and path == "/api/v1/users":
        try:
            given = json.loads(body or b"{}").get("id")
        except (ValueError, AttributeError):
            given = None
        return 200, _envelope({"id": given or _BLOB_ID})
    for (verb, prefix), answer in _REST_ANSWERS.items():
        if method == verb and path.startswith(prefix):
            return 200, answer
    return 404, _REST_NOT_FOUND


async def rest_app(scope: AsgiMessage, receive: AsgiReceive, send: AsgiSend) -> None:
    """ASGI: reads the whole request body, answers the canned envelope of its route."""
    if scope["type"] != "http":
        return
    chunks: list[bytes] = []
    more = True
    while more:
        message = await receive()
        if message["type"] == "http.disconnect":
            return
        chunks.append(message.get("body", b""))
        more = bool(message.get("more_body", False))
    status, answer = _rest_answer(scope["method"], scope["path"], b"".join(chunks))
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(answer)).encode()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": answer})


async def _orphaned(parent: int) -> None:
    """Return once the process that started us is gone (we were re-parented)."""
    while os.getppid() == parent:  # noqa: ASYNC110 - no event tells us; poll cheaply
        await asyncio.sleep(1.0)


async def serve(port: int, parent: int, http_port: int | None = None) -> None:
    # Same server options as the real one (transport/grpc/server.py), minus interceptors.
    server = aio.server(
        options=[
            ("grpc.max_receive_message_length", 8 * 1024 * 1024),
            ("grpc.max_send_message_length", 8 * 1024 * 1024),
            ("grpc.server.max_pending_requests", 10_000),
        ]
    )
    user_pb2_grpc.add_UserServiceServicer_to_server(NoopUsers(), server)
    blob_pb2_grpc.add_BlobServiceServicer_to_server(NoopBlobs(), server)
    if server.add_insecure_port(f"{HOST}:{port}") == 0:
        raise OSError(f"cannot listen on {HOST}:{port}")
    await server.start()
    http = None
    if http_port is not None:
        http = HttpServer(rest_app)
        await http.start(HOST, http_port)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    stop_task = asyncio.create_task(stop.wait())
    orphan_task = asyncio.create_task(_orphaned(parent))
    await asyncio.wait({stop_task, orphan_task}, return_when=asyncio.FIRST_COMPLETED)
    stop_task.cancel()
    orphan_task.cancel()
    if http is not None:
        await http.stop()
    await server.stop(0.5)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--http-port", type=int, help="also answer REST on this port")
    args = parser.parse_args(argv)
    uvloop.run(serve(args.port, os.getppid(), args.http_port))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
