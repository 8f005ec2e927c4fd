"""The load generator: client worker processes, each running an asyncio loop (uvloop) with a
fixed number of lanes; every lane keeps exactly one request in flight (closed loop).

The parent (``bench.unary``, ``bench.reads``) owns a ``ClientPool`` of worker processes and
sends each a ``Case``; a worker warms up, measures for ``seconds``, and sends back a
``WorkerResult``. All workers of a case start at the same wall-clock time, so their windows
line up. The read RPCs send the parameters the SDK sends by default.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import multiprocessing
import signal
import time
import traceback
import urllib.parse
import uuid
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from typing import Any, Literal

import grpc
import httpx
import uvloop
from google.protobuf import struct_pb2

from memobase_server.gen.memobase.v1 import (
    blob_pb2,
    blob_pb2_grpc,
    common_pb2,
    event_pb2,
    event_pb2_grpc,
    profile_pb2,
    profile_pb2_grpc,
    user_pb2,
    user_pb2_grpc,
)

Target = Literal["noop-grpc", "grpc", "rest"]
UnaryRpc = Literal["CreateUser", "InsertBlob", "GetUser"]
ReadRpc = Literal["GetProfile", "GetContext", "GetContextChats", "SearchEvents", "SearchEventGists"]
"""Memory reads (``bench.reads``); ``GetContextChats`` is GetContext with ``chats_str``."""
Rpc = Literal[UnaryRpc, ReadRpc]
TARGETS: tuple[Target, ...] = ("noop-grpc", "grpc", "rest")
RPCS: tuple[UnaryRpc, ...] = ("CreateUser", "InsertBlob", "GetUser")
READ_RPCS: tuple[ReadRpc, ...] = (
    "GetProfile",
    "GetContext",
    "GetContextChats",
    "SearchEvents",
    "SearchEventGists",
)
READ_MAX_TOKEN_SIZE = 1000
"""The SDK's default ``max_token_size`` of ``profile()`` and ``context()``."""
SEARCH_TOPK = 10
SEARCH_THRESHOLD = 0.2
SEARCH_DAYS = 180
"""The SDK's defaults of ``search_event()`` and ``search_event_gist()``."""

USER_DATA: dict[str, Any] = {"name": "bench", "plan": "free"}
CHAT_MESSAGES: list[dict[str, Any]] = [
    {"role": "user", "content": "I moved to Lisbon last month and I am learning Portuguese."},
    {"role": "assistant", "content": "Parabéns! How are the lessons going so far?"},
]
GRPC_CHANNEL_OPTIONS: list[tuple[str, Any]] = [
    # Loopback only: never route through an http(s)_proxy from the environment.
    ("grpc.enable_http_proxy", 0),
]

Call = Callable[[int], Awaitable[str | None]]
"""One request for lane iteration ``i``; returns None on success, else an error label."""


@dataclass(frozen=True)
class Case:
    target: Target
    rpc: Rpc
    address: str
    """gRPC target (host:port) or REST base URL (http://host:port)."""
    token: str
    lanes: int
    """Requests this worker keeps in flight."""
    lane_offset: int
    """Index of this worker's first lane among all workers' lanes (spreads users)."""
    user_ids: tuple[str, ...]
    start_at: float
    """Wall-clock time (time.time()) at which warm-up begins."""
    warmup_s: float
    seconds: float
    timeout_s: float
    queries: tuple[str, ...] = ()
    """Read RPCs: one search query per user, aligned with ``user_ids``."""
    chats: tuple[str, ...] = ()
    """Read RPCs: one ``chats_str`` (a JSON list of messages) per user, aligned with
    ``user_ids``."""


@dataclass
class WorkerResult:
    latencies_ms: list[float] = field(default_factory=list)
    """Successful calls that completed inside the measured window."""
    errors: Counter[str] = field(default_factory=Counter)
    """Failed calls that completed inside the window, by label."""
    warmup_ok: int = 0
    warmup_errors: Counter[str] = field(default_factory=Counter)
    late: int = 0
    """Calls that completed after the window closed (not counted)."""
    window_s: float = 0.0
    failure: str | None = None
    """A traceback if the worker itself failed."""


def _struct(value: dict[str, Any]) -> struct_pb2.Struct:
    s = struct_pb2.Struct()
    s.update(value)
    return s


def _grpc_error(exc: grpc.aio.AioRpcError) -> str:
    return f"grpc {exc.code().name}: {(exc.details() or '')[:160]}"


def _grpc_guarded(send: Callable[[int], Awaitable[object]]) -> Call:
    """A call that turns a failed RPC into its error label."""

    async def call(i: int) -> str | None:
        try:
            await send(i)
        except grpc.aio.AioRpcError as exc:
            return _grpc_error(exc)
        return None

    return call


def _aligned(case: Case, values: tuple[str, ...], what: str) -> tuple[str, ...]:
    if len(values) != len(case.user_ids):
        raise ValueError(f"{case.rpc} needs one {what} per user ({len(case.user_ids)} users)")
    return values


def _grpc_read_call(case: Case, channel: grpc.aio.Channel) -> Call:
    """The memory reads, with the parameters the SDK sends by default."""
    metadata = (("authorization", f"Bearer {case.token}"),)
    profiles = profile_pb2_grpc.ProfileServiceStub(channel)
    events = event_pb2_grpc.EventServiceStub(channel)
    timeout = case.timeout_s
    ids = case.user_ids
    n = len(ids)

    if case.rpc == "GetProfile":
        profile_requests = [
            profile_pb2.GetProfileRequest(user_id=u, max_token_size=READ_MAX_TOKEN_SIZE)
            for u in ids
        ]

        async def get_profile(i: int) -> object:
            return await profiles.GetProfile(
                profile_requests[i % n], metadata=metadata, timeout=timeout
            )

        return _grpc_guarded(get_profile)

    if case.rpc in ("GetContext", "GetContextChats"):
        chats = _aligned(case, case.chats, "chats_str") if case.rpc == "GetContextChats" else ()
        context_requests = []
        for k, u in enumerate(ids):
            request = profile_pb2.GetContextRequest(user_id=u, max_token_size=READ_MAX_TOKEN_SIZE)
            if chats:
                request.chats_str = chats[k]
            context_requests.append(request)

        async def get_context(i: int) -> object:
            return await profiles.GetContext(
                context_requests[i % n], metadata=metadata, timeout=timeout
            )

        return _grpc_guarded(get_context)

    queries = _aligned(case, case.queries, "query")
    if case.rpc == "SearchEvents":
        event_requests = [
            event_pb2.SearchEventsRequest(
                user_id=u,
                query=queries[k],
                topk=SEARCH_TOPK,
                similarity_threshold=SEARCH_THRESHOLD,
                time_range_in_days=SEARCH_DAYS,
            )
            for k, u in enumerate(ids)
        ]

        async def search_events(i: int) -> object:
            return await events.SearchEvents(
                event_requests[i % n], metadata=metadata, timeout=timeout
            )

        return _grpc_guarded(search_events)

    if case.rpc != "SearchEventGists":
        raise ValueError(f"not a read RPC: {case.rpc}")
    gist_requests = [
        event_pb2.SearchEventGistsRequest(
            user_id=u,
            query=queries[k],
            topk=SEARCH_TOPK,
            similarity_threshold=SEARCH_THRESHOLD,
            time_range_in_days=SEARCH_DAYS,
        )
        for k, u in enumerate(ids)
    ]

    async def search_gists(i: int) -> object:
        return await events.SearchEventGists(
            gist_requests[i % n], metadata=metadata, timeout=timeout
        )

    return _grpc_guarded(search_gists)


def read_paths(case: Case) -> list[str]:
    """REST paths (with query strings) of a read RPC, one per user, as the SDK writes them
    (but percent-encoded)."""
    ids = case.user_ids
    quote = urllib.parse.quote
    if case.rpc == "GetProfile":
        return [f"/api/v1/users/profile/{u}?max_token_size={READ_MAX_TOKEN_SIZE}" for u in ids]
    if case.rpc == "GetContext":
        return [f"/api/v1/users/context/{u}?max_token_size={READ_MAX_TOKEN_SIZE}" for u in ids]
    if case.rpc == "GetContextChats":
        chats = _aligned(case, case.chats, "chats_str")
        return [
            f"/api/v1/users/context/{u}?max_token_size={READ_MAX_TOKEN_SIZE}"
            f"&chats_str={quote(chats[k], safe='')}"
            for k, u in enumerate(ids)
        ]
    route = {"SearchEvents": "event", "SearchEventGists": "event_gist"}.get(case.rpc)
    if route is None:
        raise ValueError(f"not a read RPC: {case.rpc}")
    queries = _aligned(case, case.queries, "query")
    return [
        f"/api/v1/users/{route}/search/{u}?query={quote(queries[k], safe='')}"
        f"&topk={SEARCH_TOPK}&similarity_threshold={SEARCH_THRESHOLD}"
        f"&time_range_in_days={SEARCH_DAYS}"
        for k, u in enumerate(ids)
    ]


def _grpc_call(case: Case, channel: grpc.aio.Channel) -> Call:
    if case.rpc in READ_RPCS:
        return _grpc_read_call(case, channel)
    metadata = (("authorization", f"Bearer {case.token}"),)
    users = user_pb2_grpc.UserServiceStub(channel)
    blobs = blob_pb2_grpc.BlobServiceStub(channel)
    timeout = case.timeout_s
    ids = case.user_ids

    if case.rpc == "CreateUser":
        data = _struct(USER_DATA)

        async def create(i: int) -> str | None:
            request = user_pb2.CreateUserRequest(id=str(uuid.uuid4()), data=data)
            try:
                await users.CreateUser(request, metadata=metadata, timeout=timeout)
            except grpc.aio.AioRpcError as exc:
                return _grpc_error(exc)
            return None

        return create

    if case.rpc == "InsertBlob":
        blob = common_pb2.BlobInput(
            blob_type=common_pb2.BLOB_TYPE_CHAT, blob_data=_struct({"messages": CHAT_MESSAGES})
        )
        inserts = [blob_pb2.InsertBlobRequest(user_id=u, blob=blob) for u in ids]

        async def insert(i: int) -> str | None:
            try:
                await blobs.InsertBlob(inserts[i % len(ids)], metadata=metadata, timeout=timeout)
            except grpc.aio.AioRpcError as exc:
                return _grpc_error(exc)
            return None

        return insert

    gets = [user_pb2.GetUserRequest(user_id=u) for u in ids]

    async def get(i: int) -> str | None:
        try:
            await users.GetUser(gets[i % len(ids)], metadata=metadata, timeout=timeout)
        except grpc.aio.AioRpcError as exc:
            return _grpc_error(exc)
        return None

    return get


def _rest_outcome(response: httpx.Response) -> str | None:
    if response.status_code != 200:
        return f"http {response.status_code}: {response.text[:160]}"
    body = json.loads(response.content)
    errno = body.get("errno")
    if errno != 0:
        return f"errno {errno}: {str(body.get('errmsg'))[:160]}"
    return None


def _rest_call(case: Case, client: httpx.AsyncClient) -> Call:
    ids = case.user_ids
    if case.rpc in READ_RPCS:
        read_urls = read_paths(case)

        async def read(i: int) -> str | None:
            return _rest_outcome(await client.get(read_urls[i % len(read_urls)]))

        return read
    json_headers = {"content-type": "application/json"}

    if case.rpc == "CreateUser":
        data = json.dumps(USER_DATA)

        async def create(i: int) -> str | None:
            body = f'{{"data": {data}, "id": "{uuid.uuid4()}"}}'.encode()
            response = await client.post("/api/v1/users", content=body, headers=json_headers)
            return _rest_outcome(response)

        return create

    if case.rpc == "InsertBlob":
        body = json.dumps({"blob_type": "chat", "blob_data": {"messages": CHAT_MESSAGES}}).encode()
        paths = [f"/api/v1/blobs/insert/{u}" for u in ids]

        async def insert(i: int) -> str | None:
            response = await client.post(paths[i % len(ids)], content=body, headers=json_headers)
            return _rest_outcome(response)

        return insert

    user_paths = [f"/api/v1/users/{u}" for u in ids]

    async def get(i: int) -> str | None:
        return _rest_outcome(await client.get(user_paths[i % len(ids)]))

    return get


async def _drive(case: Case, call: Call) -> WorkerResult:
    result = WorkerResult()
    now_wall, now_perf = time.time(), time.perf_counter()
    start = now_perf + max(0.0, case.start_at - now_wall)
    window_start = start + case.warmup_s
    window_end = window_start + case.seconds
    stride = case.lanes

    async def lane(k: int) -> None:
        i = case.lane_offset + k
        while time.perf_counter() < window_end:
            begin = time.perf_counter()
            try:
                error = await call(i)
            except Exception as exc:  # transport failures: count them, keep going
                error = f"{type(exc).__name__}: {str(exc)[:160]}"
            end = time.perf_counter()
            i += stride
            if end < window_start:
                if error is None:
                    result.warmup_ok += 1
                else:
                    result.warmup_errors[error] += 1
            elif end <= window_end:
                if error is None:
                    result.latencies_ms.append((end - begin) * 1000.0)
                else:
                    result.errors[error] += 1
            else:
                result.late += 1

    await asyncio.sleep(max(0.0, start - time.perf_counter()))
    async with asyncio.TaskGroup() as group:
        for k in range(case.lanes):
            group.create_task(lane(k))
    result.window_s = case.seconds
    return result


async def run_case(case: Case) -> WorkerResult:
    """Warm up, measure, and return what this worker saw."""
    if case.target == "rest":
        limits = httpx.Limits(max_connections=case.lanes, max_keepalive_connections=case.lanes)
        async with httpx.AsyncClient(
            base_url=case.address,
            headers={"authorization": f"Bearer {case.token}"},
            limits=limits,
            timeout=case.timeout_s,
            trust_env=False,  # loopback only: ignore proxy settings from the environment
        ) as client:
            return await _drive(case, _rest_call(case, client))
    async with grpc.aio.insecure_channel(case.address, options=GRPC_CHANNEL_OPTIONS) as channel:
        await asyncio.wait_for(channel.channel_ready(), timeout=10)
        return await _drive(case, _grpc_call(case, channel))


async def _serve(conn: Connection) -> None:
    while True:
        try:
            case = await asyncio.to_thread(conn.recv)
        except EOFError:  # the parent went away
            return
        if case is None:
            return
        try:
            result = await run_case(case)
        except Exception:
            result = WorkerResult(failure=traceback.format_exc())
        try:
            conn.send(result)
        except OSError:  # the parent went away (interrupted)
            return


def worker_main(conn: Connection) -> None:
    """Entry point of a client process: run the cases the parent sends until told to stop."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent handles Ctrl-C and stops us
    uvloop.run(_serve(conn))


class ClientPool:
    """``size`` client worker processes (spawned, so no gRPC state is forked)."""

    def __init__(self, size: int) -> None:
        context = multiprocessing.get_context("spawn")
        self._workers: list[tuple[multiprocessing.process.BaseProcess, Connection]] = []
        try:
            for n in range(size):
                parent_end, child_end = context.Pipe()
                process = context.Process(
                    target=worker_main, args=(child_end,), name=f"bench-client-{n}", daemon=True
                )
                process.start()
                child_end.close()
                self._workers.append((process, parent_end))
        except BaseException:
            self.close()
            raise

    @property
    def size(self) -> int:
        return len(self._workers)

    @property
    def pids(self) -> list[int]:
        return [p.pid for p, _ in self._workers if p.pid is not None]

    def send(self, cases: list[Case]) -> None:
        for (_, conn), case in zip(self._workers, cases, strict=True):
            conn.send(case)

    def receive(self, timeout_s: float) -> list[WorkerResult]:
        results: list[WorkerResult] = []
        deadline = time.monotonic() + timeout_s
        for process, conn in self._workers:
            if not conn.poll(max(0.0, deadline - time.monotonic())):
                raise TimeoutError(f"client {process.name} did not answer in {timeout_s:.0f}s")
            result = conn.recv()
            assert isinstance(result, WorkerResult)
            results.append(result)
        return results

    def close(self) -> None:
        """Ask the workers to stop, then terminate any that do not; idempotent."""
        for process, conn in self._workers:
            with contextlib.suppress(OSError):
                conn.send(None)
            conn.close()
            process.join(timeout=2)
            if process.is_alive():
                process.terminate()
                process.join(timeout=2)
            if process.is_alive():
                process.kill()
                process.join()
        self._workers.clear()
