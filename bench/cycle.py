"""Memory-loop benchmark: the cycle users live, over REST, never part of CI.

    python -m bench.cycle                     # 50 users x 20 blobs, model at 0 and 800 ms (~3 min)
    python -m bench.cycle --users 8 --blobs 5 --latencies 0     # a quick check (~40 s)
    python -m bench.cycle --http-url http://127.0.0.1:8019 --token T  # a running server
                                                       # (e.g. upstream Memobase on this machine)

For each user: create it, insert its chat blobs (``bench.chats``, in order), flush
synchronously, read its context right after the flush (the first read: the caches are empty,
and other users' flushes are still running: the load users make), read it again (cached),
and in the end delete it. ``--concurrency`` clients (16) run a closed loop: each runs one
user's step at a time and then takes the next user. The steps run as phases, each over
every user and finished before the next starts, so each phase has its own wall time,
throughput and CPU. Before the measured loop, an untimed one over ``--warmup-users`` other
users on the same server (a fresh database creates its tables on first use). The clients
share one asyncio process and a lean HTTP/1.1 keep-alive client (``Http1``: ~0.1 ms of CPU
a request, where httpx takes ~3 ms here).

1. create: ``POST /api/v1/users``
2. insert: ``POST /api/v1/blobs/insert/{user}`` (a user's blobs one after the other)
3. flush: ``POST /api/v1/users/buffer/{user}/chat?wait_process=true``, then at once
   ``GET /api/v1/users/context/{user}?max_token_size=1000`` (the first read; an answer
   "busy, retry later", errno 503, is counted as an error and the flush retried)
4. cached read: the same context read again
5. delete: ``DELETE /api/v1/users/{user}``

Only those public Memobase REST routes are used (envelope ``{data, errno, errmsg}``; an
error is HTTP status != 200, errno != 0 or a transport failure).

Own stack (default): for each ``--latencies`` value (ms added to every call of the scripted
model, chat and embeddings: ``POST /_scripted/faults``), a fresh stack on free loopback ports
(FerretDB on a private PostgreSQL cluster, redis-server, the scripted model, the server with
the tests' ``ScriptedLLM.server_env()`` and LOG_LEVEL WARNING unless ``--log-level``;
``bench.reads.start_stack``)
and default memory settings, so a user's buffer can also flush by itself (by size) while
its blobs are inserted, as upstream's does. Before it all, the no-op ceiling: the same loop
at the same concurrency against ``bench.noop_server``'s REST mode (uvicorn + httptools
answering canned envelopes at once, no gateway, auth or storage), ``--ceiling-repeats``
times, pooled.

``--http-url URL --token T``: measures that server (loopback only) instead; nothing is
started, the model latency is whatever that server's model takes, and there is no ceiling.
``--cpu-group NAME=PID[,PID]`` names its processes (with their descendants) for the CPU table.

Prints a Markdown report (operations table, flush throughput, CPU per process group over
each phase, what the flushes made, errors, server logs) and writes it to
``bench/results/cycle-<date>.md``. Exits with 1 if any request failed. Every process it
starts is stopped on exit, Ctrl-C or SIGTERM.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime as dt
import functools
import json
import math
import os
import pathlib
import platform
import sys
import time
import uuid
from collections import Counter
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode, urlsplit

import httpx
import uvloop
from pymongo import MongoClient

from bench import cpu
from bench.chats import UserChats, user_chats
from bench.flush import percentile
from bench.loadgen import READ_MAX_TOKEN_SIZE
from bench.reads import (
    FLUSH_ATTEMPTS,
    Phases,
    Stack,
    _llm_stats,
    _memory_stats,
    run_bench,
    settle,
    start_stack,
)
from bench.unary import (
    CLIENT_BOUND,
    FOREIGN_LOAD,
    _check_loopback,
    _cores,
    _cpu_model,
    _git_commit,
    stack_log_sections,
    start_noop,
)
from memobase_server.storage.mongo.database import FLUSHES
from tests import servers

OPS = ("create", "insert", "flush", "first_read", "cached_read", "delete")
OP_LABELS = {
    "create": "create user",
    "insert": "insert chat blob",
    "flush": "sync flush",
    "first_read": "first context read, right after the flush",
    "cached_read": "cached context read",
    "delete": "delete user",
}
PHASES = ("create", "insert", "flush", "cached read", "delete")
PHASE_OPS = {
    "create": ("create",),
    "insert": ("insert",),
    "flush": ("flush", "first_read"),
    "cached read": ("cached_read",),
    "delete": ("delete",),
}
STACK_GROUPS = ("server", "ferretdb", "postgres", "redis", "scripted-llm")
"""CPU groups of our own stack (each a process and its descendants), in report order."""
CLIENT = "client"
NOOP = "no-op"
EXTERNAL = "external"
BUSY_ERRNO = 503
SETTLE_S = 60.0
CLEANUP_S = 30.0


# ---------------------------------------------------------------- results


@dataclass
class OpStats:
    latencies_ms: list[float] = field(default_factory=list)
    """Successful requests."""
    errors: Counter[str] = field(default_factory=Counter)
    """Failed requests, by label."""
    sizes: list[int] = field(default_factory=list)
    """Context reads: characters of each answer."""

    @property
    def ok(self) -> int:
        return len(self.latencies_ms)

    def pct(self, q: float) -> float | None:
        value = percentile(self.latencies_ms, q)
        return None if math.isnan(value) else value

    def merge(self, other: OpStats) -> None:
        self.latencies_ms += other.latencies_ms
        self.errors.update(other.errors)
        self.sizes += other.sizes


@dataclass
class PhaseResult:
    name: str
    wall_s: float
    ops: dict[str, OpStats]
    usage: cpu.Usage
    cores: dict[str, float | None]
    """Average cores of each process group (the client, the stack's groups)."""


@dataclass
class Cycle:
    """One run of the loop over every user, against one server."""

    label: str
    """``0 ms`` / ``800 ms`` (scripted-model latency), ``no-op`` or ``external``."""
    phases: list[PhaseResult] = field(default_factory=list)
    flush_started: dt.datetime | None = None
    """Wall clock (UTC) when the flush phase began."""
    notes: list[str] = field(default_factory=list)
    """What the run made and saw, for the report (own stack only)."""
    server_log: pathlib.Path | None = None
    ferretdb_log: pathlib.Path | None = None
    warmup: Cycle | None = None
    """The untimed loop over ``--warmup-users`` users just before, on the same server."""

    def phase(self, name: str) -> PhaseResult | None:
        return next((p for p in self.phases if p.name == name), None)

    def op(self, name: str) -> tuple[OpStats, float] | None:
        """An operation's stats and the wall time of the phase that ran it."""
        for p in self.phases:
            if name in p.ops:
                return p.ops[name], p.wall_s
        return None

    @property
    def clean(self) -> bool:
        return all(not s.errors for p in self.phases for s in p.ops.values()) and (
            self.warmup is None or self.warmup.clean
        )


def _pooled(cycles: list[Cycle], label: str) -> Cycle:
    """Repeats of one loop as one: phases' wall times summed, requests pooled; the CPU is
    that of the longest repeat of each phase."""
    pooled = Cycle(label)
    for name in PHASES:
        runs = [p for c in cycles if (p := c.phase(name)) is not None]
        if not runs:
            continue
        ops: dict[str, OpStats] = {}
        for p in runs:
            for op, stats in p.ops.items():
                ops.setdefault(op, OpStats()).merge(stats)
        longest = max(runs, key=lambda p: p.wall_s)
        pooled.phases.append(
            PhaseResult(name, sum(p.wall_s for p in runs), ops, longest.usage, longest.cores)
        )
    return pooled


# ---------------------------------------------------------------- the client


@dataclass(frozen=True)
class Workload:
    chats: list[UserChats]
    concurrency: int
    timeout_s: float
    warmup: list[UserChats] = field(default_factory=list)
    """Users of the warm-up loop (other chats than the measured users')."""


@dataclass
class Outcome:
    error: str | None
    errno: int | None
    data: Any


def _outcome(status: int, content: bytes) -> Outcome:
    text = content[:160].decode(errors="replace")
    if status != 200:
        return Outcome(f"http {status}: {text}", None, None)
    try:
        body = json.loads(content)
        errno = body["errno"]
        data = body["data"]
    except (ValueError, KeyError, TypeError):
        return Outcome(f"not an envelope: {text}", None, None)
    if errno != 0:
        return Outcome(f"errno {errno}: {str(body.get('errmsg'))[:160]}", errno, None)
    return Outcome(None, 0, data)


class _Connection:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer
        self.used = False

    @property
    def closed(self) -> bool:
        return self.reader.at_eof() or self.writer.is_closing()

    def close(self) -> None:
        self.writer.close()


class _Reset(Exception):
    """A reused keep-alive connection failed before any byte of the answer: the server had
    closed it (idle timeout); the request is sent again on a new connection."""


class Http1:
    """A lean HTTP/1.1 keep-alive client on asyncio streams, loopback only: a connection per
    request in flight, kept for the next one. httpx spends ~3 ms of CPU per request here
    (its connection pool polls every connection on each request), about 40 times what this
    does: on a small machine it would be the no-op ceiling's bottleneck and take CPU from
    the server under test."""

    def __init__(self, url: str, token: str, timeout_s: float) -> None:
        parts = urlsplit(url)
        self.host = parts.hostname or servers.HOST
        self.port = parts.port or 80
        self.prefix = parts.path.rstrip("/")
        self.timeout_s = timeout_s
        self._fixed = f"host: {parts.netloc}\r\nauthorization: Bearer {token}\r\n"
        self._idle: list[_Connection] = []

    async def request(
        self, method: str, path: str, params: dict[str, Any] | None = None, body: bytes = b""
    ) -> tuple[int, bytes]:
        target = self.prefix + path + (f"?{urlencode(params)}" if params else "")
        head = f"{method} {target} HTTP/1.1\r\n{self._fixed}"
        if body or method in ("POST", "PUT", "PATCH"):
            head += f"content-type: application/json\r\ncontent-length: {len(body)}\r\n"
        message = (head + "\r\n").encode() + body
        async with asyncio.timeout(self.timeout_s):
            while True:
                connection = await self._acquire()
                try:
                    status, content, keep = await self._exchange(connection, message)
                except _Reset:
                    connection.close()
                    continue
                except BaseException:
                    connection.close()
                    raise
                if keep:
                    self._idle.append(connection)
                else:
                    connection.close()
                return status, content

    async def _acquire(self) -> _Connection:
        while self._idle:
            connection = self._idle.pop()
            if not connection.closed:
                return connection
            connection.close()
        reader, writer = await asyncio.open_connection(self.host, self.port)
        return _Connection(reader, writer)

    async def _exchange(self, connection: _Connection, message: bytes) -> tuple[int, bytes, bool]:
        reused, connection.used = connection.used, True
        reader = connection.reader
        try:
            connection.writer.write(message)
            await connection.writer.drain()
            head = await reader.readuntil(b"\r\n\r\n")
        except (ConnectionError, asyncio.IncompleteReadError) as exc:
            partial = isinstance(exc, asyncio.IncompleteReadError) and exc.partial
            if reused and not partial:
                raise _Reset from exc
            raise
        lines = head.decode("latin-1").split("\r\n")
        status = int(lines[0].split(" ", 2)[1])
        headers: dict[str, str] = {}
        for line in lines[1:]:
            name, _, value = line.partition(":")
            if name:
                headers[name.strip().lower()] = value.strip().lower()
        keep = headers.get("connection") != "close" and lines[0].startswith("HTTP/1.1")
        if status < 200 or status in (204, 304):
            content = b""
        elif "content-length" in headers:
            content = await reader.readexactly(int(headers["content-length"]))
        elif "chunked" in headers.get("transfer-encoding", ""):
            chunks = []
            while size := int((await reader.readuntil(b"\r\n")).split(b";")[0], 16):
                chunks.append(await reader.readexactly(size))
                await reader.readexactly(2)
            while await reader.readuntil(b"\r\n") != b"\r\n":  # trailers
                pass
            content = b"".join(chunks)
        else:
            content, keep = await reader.read(), False
        return status, content, keep

    async def aclose(self) -> None:
        for connection in self._idle:
            connection.close()
        self._idle.clear()


class Client:
    """REST calls, each timed and recorded under its operation."""

    SHOWN_FAILURES = 10

    def __init__(self, http: Http1) -> None:
        self.http = http
        self.ops: dict[str, OpStats] = {}
        self.failures = 0

    async def call(
        self, op: str, method: str, path: str, *, params: dict[str, Any] | None = None, body: bytes
    ) -> Outcome:
        begin = time.perf_counter()
        try:
            outcome = _outcome(*await self.http.request(method, path, params, body))
        except Exception as exc:  # transport failures and timeouts: count them, keep going
            outcome = Outcome(f"{type(exc).__name__}: {str(exc)[:160]}", None, None)
        took_ms = (time.perf_counter() - begin) * 1000.0
        stats = self.ops.setdefault(op, OpStats())
        if outcome.error is None:
            stats.latencies_ms.append(took_ms)
        else:
            stats.errors[outcome.error] += 1
            self.failures += 1
            if self.failures <= self.SHOWN_FAILURES:  # which user: for the server's logs
                print(
                    f"bench:   failed after {took_ms:.0f} ms: {method} {path}: {outcome.error}",
                    file=sys.stderr,
                    flush=True,
                )
        return outcome


async def _lanes(concurrency: int, jobs: Sequence[Callable[[], Awaitable[None]]]) -> None:
    """Closed loop: ``concurrency`` lanes, each running one job (one user's step) at a time
    and then taking the next job not yet taken."""
    todo = iter(jobs)

    async def lane() -> None:
        for job in todo:
            await job()

    await asyncio.gather(*(lane() for _ in range(min(concurrency, len(jobs)))))


@dataclass
class Groups:
    """CPU groups: this process (the client) and trees of processes (a root with its
    descendants), and the pids whose trees are not foreign."""

    trees: dict[str, list[int]]
    ours: set[int]


async def _phase(
    cycle: Cycle,
    name: str,
    client: Client,
    groups: Groups,
    concurrency: int,
    jobs: Sequence[Callable[[], Awaitable[None]]],
) -> None:
    client.ops = {op: OpStats() for op in PHASE_OPS[name]}
    plain = {CLIENT: [os.getpid()]}
    before = cpu.snapshot(plain)
    began = time.perf_counter()
    await _lanes(concurrency, jobs)
    wall = time.perf_counter() - began
    after = cpu.snapshot(plain)
    usage = cpu.usage(before, after, groups.ours)
    cores = dict(usage.cores)
    for group, roots in groups.trees.items():
        cores[group] = cpu.tree_cores(before, after, roots)
    cycle.phases.append(PhaseResult(name, wall, client.ops, usage, cores))
    ok = sum(s.ok for s in client.ops.values())
    failed = sum(s.errors.total() for s in client.ops.values())
    print(
        f"bench:   {cycle.label} {name}: {ok} ok, {failed} failed in {wall:.1f} s",
        file=sys.stderr,
        flush=True,
    )


def _bodies(made: UserChats) -> list[bytes]:
    return [
        json.dumps({"blob_type": "chat", "blob_data": {"messages": list(messages)}}).encode()
        for messages in made.blobs
    ]


class UserLoop:
    """Each step of the loop for user ``n`` (the users' ids once created)."""

    def __init__(self, client: Client, work: Workload) -> None:
        self.client = client
        self.bodies = [_bodies(made) for made in work.chats]
        self.wanted = [str(uuid.uuid4()) for _ in work.chats]
        self.user_ids: list[str | None] = [None] * len(self.wanted)

    def each(self, step: Callable[[int], Awaitable[None]]) -> list[Callable[[], Awaitable[None]]]:
        return [functools.partial(step, n) for n in range(len(self.wanted))]

    async def create(self, n: int) -> None:
        body = json.dumps({"data": {"name": f"cycle user {n}"}, "id": self.wanted[n]}).encode()
        outcome = await self.client.call("create", "POST", "/api/v1/users", body=body)
        if outcome.error is None:
            given = outcome.data.get("id") if isinstance(outcome.data, dict) else None
            self.user_ids[n] = str(given or self.wanted[n])

    async def insert(self, n: int) -> None:
        if (user_id := self.user_ids[n]) is None:
            return
        for body in self.bodies[n]:  # in order: a user's chats are a timeline
            await self.client.call("insert", "POST", f"/api/v1/blobs/insert/{user_id}", body=body)

    async def _read(self, op: str, user_id: str) -> None:
        outcome = await self.client.call(
            op,
            "GET",
            f"/api/v1/users/context/{user_id}",
            params={"max_token_size": READ_MAX_TOKEN_SIZE},
            body=b"",
        )
        if outcome.error is None:
            context = outcome.data.get("context") if isinstance(outcome.data, dict) else None
            self.client.ops[op].sizes.append(len(context) if isinstance(context, str) else 0)

    async def flush_then_read(self, n: int) -> None:
        if (user_id := self.user_ids[n]) is None:
            return
        for attempt in range(FLUSH_ATTEMPTS):
            outcome = await self.client.call(
                "flush",
                "POST",
                f"/api/v1/users/buffer/{user_id}/chat",
                params={"wait_process": "true"},
                body=b"",
            )
            if outcome.errno != BUSY_ERRNO or attempt == FLUSH_ATTEMPTS - 1:
                break
            await asyncio.sleep(1.0 + attempt)  # "busy, retry later", as reads.py does
        await self._read("first_read", user_id)

    async def cached_read(self, n: int) -> None:
        if (user_id := self.user_ids[n]) is not None:
            await self._read("cached_read", user_id)

    async def delete(self, n: int) -> None:
        if (user_id := self.user_ids[n]) is not None:
            outcome = await self.client.call(
                "delete", "DELETE", f"/api/v1/users/{user_id}", body=b""
            )
            if outcome.error is None:
                self.user_ids[n] = None

    async def delete_left(self) -> None:
        """Best effort, untimed: deletes the users still there (after a failure)."""
        left = [u for u in self.user_ids if u is not None]
        if not left:
            return
        with contextlib.suppress(Exception):
            await asyncio.wait_for(
                asyncio.gather(
                    *(self.client.http.request("DELETE", f"/api/v1/users/{u}") for u in left),
                    return_exceptions=True,
                ),
                CLEANUP_S,
            )


async def run_cycle(
    label: str,
    url: str,
    token: str,
    work: Workload,
    groups: Groups,
    before_delete: Callable[[Cycle, list[str]], None] | None = None,
) -> Cycle:
    """The loop over every user, phase by phase. ``before_delete`` runs (untimed) once the
    cached reads are done, with the ids of the users, who still exist."""
    cycle = Cycle(label)
    http = Http1(url, token, work.timeout_s)
    client = Client(http)
    loop = UserLoop(client, work)
    c = work.concurrency
    deleted = False
    try:
        await _phase(cycle, "create", client, groups, c, loop.each(loop.create))
        await _phase(cycle, "insert", client, groups, c, loop.each(loop.insert))
        cycle.flush_started = dt.datetime.now(dt.UTC)
        await _phase(cycle, "flush", client, groups, c, loop.each(loop.flush_then_read))
        await _phase(cycle, "cached read", client, groups, c, loop.each(loop.cached_read))
        if before_delete is not None:
            before_delete(cycle, [u for u in loop.user_ids if u is not None])
        await _phase(cycle, "delete", client, groups, c, loop.each(loop.delete))
        deleted = True
    finally:
        if not deleted and label == EXTERNAL:
            await loop.delete_left()  # leave no users behind in someone else's server
        await http.aclose()
    return cycle


def warm_up(label: str, url: str, token: str, work: Workload, groups: Groups) -> Cycle | None:
    """The loop over the warm-up users (untimed): the server's collections exist afterwards
    (a fresh database creates its tables on first use), its code paths and this process's
    HTTP client are warm."""
    if not work.warmup:
        return None
    lanes = min(work.concurrency, len(work.warmup))
    warm = Workload(work.warmup, lanes, work.timeout_s)
    return _run_async(run_cycle(f"{label} warm-up", url, token, warm, groups))


def _run_async(coroutine: Awaitable[Cycle]) -> Cycle:
    async def main() -> Cycle:
        return await coroutine

    return uvloop.run(main())


# ---------------------------------------------------------------- own stack


def _set_latency(llm_url: str, latency_ms: int) -> None:
    """Every answer of the scripted model (chat and embeddings) after ``latency_ms``."""
    with httpx.Client(base_url=llm_url, timeout=10, trust_env=False) as http:
        http.delete("/_scripted/faults").raise_for_status()
        if latency_ms:
            http.post(
                "/_scripted/faults", json={"mode": "none", "latency_ms": latency_ms}
            ).raise_for_status()


def _stack_groups(stack: Stack) -> Groups:
    trees = {name: list(pids) for name, pids in stack.pids.items()}
    if stack.postgres_pid is not None:
        trees["postgres"] = [stack.postgres_pid]
    return Groups(trees, {os.getpid()})


def _flush_records(stack: Stack, cycle: Cycle, user_ids: list[str]) -> str:
    """What the users' flushes made: records in MongoDB, split by whether they began before
    the flush phase (the buffer flushed by itself while blobs were inserted)."""
    users = len(user_ids)
    client: MongoClient[dict[str, Any]] = MongoClient(stack.mongo_url, tz_aware=True)
    try:
        records = list(
            client[stack.database][FLUSHES].find(
                {"user_id": {"$in": user_ids}},
                {"state": 1, "created_at": 1, "blob_ids": 1, "user_id": 1},
            )
        )
    finally:
        client.close()
    started = cycle.flush_started

    def early(record: dict[str, Any]) -> bool:
        created = record.get("created_at")
        return started is not None and isinstance(created, dt.datetime) and created < started

    def blobs(of: list[dict[str, Any]]) -> str:
        sizes = [len(r.get("blob_ids") or ()) for r in of]
        return f"{sum(sizes) / len(sizes):.1f} blobs each" if sizes else "-"

    before = [r for r in records if early(r)]
    after = [r for r in records if not early(r)]
    states = Counter(str(r.get("state")) for r in records)
    return (
        f"{len(records)} flush records for {users} users ("
        + ", ".join(f"{state} {n}" for state, n in states.most_common())
        + f"): {len(before)} began during the insert phase (a buffer past its token limit "
        f"flushes by itself; {blobs(before)}), {len(after)} during the flush phase "
        f"({blobs(after)}; a sync flush that finds nothing left makes none)"
    )


def _llm_delta(before: dict[str, Any], after: dict[str, Any], users: int) -> str:
    calls: dict[str, int] = {
        step: n - int(before.get("calls", {}).get(step, 0))
        for step, n in after.get("calls", {}).items()
    }
    embeddings = int(after.get("embedding_calls", 0)) - int(before.get("embedding_calls", 0))
    per = max(users, 1)
    steps = ", ".join(f"{step} {n / per:.2f}" for step, n in sorted(calls.items()) if n)
    return (
        f"scripted model calls per user, create to cached read: chat {steps or 'none'}; "
        f"embeddings {embeddings / per:.2f}"
    )


def own_cycle(
    latency_ms: int,
    work: Workload,
    workdir: pathlib.Path,
    phases: Phases,
    buffer_tokens: int | None = None,
    log_level: str = "WARNING",
) -> tuple[Cycle, str]:
    """A fresh stack, the loop at ``latency_ms``, the stack stopped; the cycle and the
    commit the server ran. ``buffer_tokens``: the server's
    ``max_chat_blob_buffer_token_size`` (its config file, which ``start_server`` keeps)."""
    label = f"{latency_ms} ms"
    if buffer_tokens is not None:
        workdir.mkdir(parents=True, exist_ok=True)
        (workdir / "config.yaml").write_text(f"max_chat_blob_buffer_token_size: {buffer_tokens}\n")
    with contextlib.ExitStack() as exits:
        print(f"bench: {label}: starting a fresh stack", file=sys.stderr, flush=True)
        commit = _git_commit()  # the code the server runs: taken when it starts
        stack = start_stack(workdir, exits, log_level=log_level)
        _set_latency(stack.llm_url, latency_ms)
        settle(stack.pids, SETTLE_S)
        phases.done(f"{label} start-up")
        groups = _stack_groups(stack)
        warm = warm_up(label, stack.http_url, stack.token, work, groups)
        settle(stack.pids, SETTLE_S)
        phases.done(f"{label} warm-up")
        llm_before = _llm_stats(stack)
        notes: list[str] = []

        def before_delete(cycle: Cycle, user_ids: list[str]) -> None:
            notes.append(_flush_records(stack, cycle, user_ids))
            m = _memory_stats(stack)
            users = max(len(work.chats), 1)
            notes.append(
                f"memory before the deletes: {m.get('profiles', 0):.0f} profiles, "
                f"{m.get('slots', 0) / users:.1f} profile slots, "
                f"{m.get('events', 0) / users:.1f} events and {m.get('gists', 0) / users:.1f} "
                f"gists per user; blobs left {m.get('blobs_left', 0):.0f}"
            )
            notes.append(_llm_delta(llm_before, _llm_stats(stack), len(user_ids)))

        cycle = _run_async(
            run_cycle(label, stack.http_url, stack.token, work, groups, before_delete=before_delete)
        )
        cycle.notes = notes
        cycle.warmup = warm
        cycle.server_log = stack.server_log
        cycle.ferretdb_log = stack.ferretdb_log
        phases.done(f"{label} loop")
        exits.close()  # stop the stack so its logs are complete
    return cycle, commit


def ceiling(work: Workload, workdir: pathlib.Path, repeats: int) -> Cycle:
    """The same loop against the no-op REST server, ``repeats`` times, pooled."""
    workdir.mkdir(parents=True, exist_ok=True)
    with contextlib.ExitStack() as exits:
        http_port = servers.free_port()
        noop = start_noop(workdir, exits, http_port=http_port)
        groups = Groups({"server": [noop.pid]}, {os.getpid()})
        url = f"http://{servers.HOST}:{http_port}"
        warm = warm_up(NOOP, url, "no-op", work, groups)
        runs = [_run_async(run_cycle(NOOP, url, "no-op", work, groups)) for _ in range(repeats)]
    pooled = _pooled(runs, NOOP)
    pooled.warmup = warm
    return pooled


# ---------------------------------------------------------------- reporting


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}" if value < 100 else f"{value:.0f}"


def _rate(stats: OpStats, wall_s: float) -> float | None:
    return stats.ok / wall_s if wall_s > 0 else None


def _num(value: float | None) -> str:
    if value is None:
        return "-"
    return f"{value:.2f}" if value < 10 else f"{value:.1f}" if value < 100 else f"{value:.0f}"


def results_table(cycles: list[Cycle], top: Cycle | None) -> str:
    lines = [
        "| model latency | operation | ops | errors | ops/s | p50 ms | p95 ms | p99 ms "
        "| no-op ops/s | no-op p50 ms | no-op / ours ops/s | answer |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    for cycle in cycles:
        for op in OPS:
            found = cycle.op(op)
            if found is None:
                continue
            stats, wall = found
            paced = op == "first_read"  # runs inside the flush phase: its rate is the flushes'
            rate = None if paced else _rate(stats, wall)
            ceil_rate = ceil_p50 = ratio = "-"
            if top is not None and (base := top.op(op)) is not None:
                base_rate = None if paced else _rate(*base)
                ceil_rate = _num(base_rate)
                ceil_p50 = _ms(base[0].pct(0.5))
                if base_rate is not None and rate:
                    ratio = f"{base_rate / rate:.1f}x"
            errors = stats.errors.total()
            answer = "-"
            if stats.sizes:
                empty = sum(1 for s in stats.sizes if not s)
                answer = f"{sum(stats.sizes) / len(stats.sizes):.0f} chars" + (
                    f" (**{empty} empty**)" if empty else ""
                )
            lines.append(
                f"| {cycle.label} | {OP_LABELS[op]} | {stats.ok + errors} "
                f"| {f'**{errors}**' if errors else 0} "
                f"| {'(flush phase)' if paced else _num(rate)} | {_ms(stats.pct(0.5))} "
                f"| {_ms(stats.pct(0.95))} | {_ms(stats.pct(0.99))} | {ceil_rate} | {ceil_p50} "
                f"| {ratio} | {answer} |"
            )
    return "\n".join(lines)


def flush_section(cycles: list[Cycle], top: Cycle | None) -> str:
    parts = []
    for cycle in [*cycles, *([top] if top else [])]:
        found = cycle.op("flush")
        if found is None:
            continue
        stats, wall = found
        parts.append(
            f"{cycle.label}: {stats.ok} flushes in {wall:.1f} s = "
            f"**{_num(_rate(stats, wall))} flushes/s**"
        )
    return (
        "Flush throughput (successful sync flushes over the flush phase's wall time, each "
        "followed by its user's first context read): " + "; ".join(parts) + "."
    )


def cpu_table(cycles: list[Cycle]) -> str:
    ncpu = os.cpu_count() or 1
    seen = {g for c in cycles for p in c.phases for g in p.cores if g != CLIENT}
    groups = [g for g in STACK_GROUPS if g in seen] + sorted(seen - set(STACK_GROUPS))
    lines = [
        f"CPU over each phase, in cores (this machine has {ncpu}; 1.00 = one core busy; a group "
        "is a process with its descendants; the client is this one Python process; in the "
        "no-op rows `server` is the no-op server; stack CPU ms/op: all groups but the client, "
        "per successful operation of the phase (in the flush phase: per flush, its first "
        "read included); /proc counts in 10 ms ticks, so phases shorter than a second have "
        "coarse CPU figures):",
        "",
        "| model latency | phase | wall s | client | "
        + " | ".join(groups)
        + " | kernel threads | other programs | machine busy | stack CPU ms/op |",
        "|---|---|---:|---:|" + "---:|" * len(groups) + "---:|---:|---:|---:|",
    ]
    disturbed: list[str] = []
    for cycle in cycles:
        for p in cycle.phases:
            c = p.cores
            client = c.get(CLIENT)
            flag = " (client-bound?)" if client is not None and client >= CLIENT_BOUND else ""
            machine = p.usage.machine_cores
            saturated = " (saturated)" if machine is not None and machine >= 0.95 * ncpu else ""
            if p.usage.foreign_cores > FOREIGN_LOAD:
                top = ", ".join(f"`{name}` {cores:.2f}" for name, cores in p.usage.foreign_top)
                disturbed.append(f"{cycle.label} {p.name} ({top})")
            ok = p.ops[PHASE_OPS[p.name][0]].ok
            stack_cores = [c.get(g) for g in groups]
            known = [v for v in stack_cores if v is not None]
            per_op = f"{sum(known) * p.wall_s * 1000 / ok:.1f}" if ok and known else "-"
            lines.append(
                f"| {cycle.label} | {p.name} | {p.wall_s:.2f} | {_cores(client)}{flag} | "
                + " | ".join(_cores(v) for v in stack_cores)
                + f" | {_cores(p.usage.kernel_cores)} | {_cores(p.usage.foreign_cores)} "
                f"| {_cores(machine)} / {ncpu}{saturated} | {per_op} |"
            )
    if disturbed:
        lines += [
            "",
            f"**Disturbed: other programs used more than {FOREIGN_LOAD:g} cores during "
            f"{'; '.join(disturbed)}. Those rows are not clean; rerun on a quiet machine.**",
        ]
    return "\n".join(lines)


def errors_section(measured: list[Cycle]) -> str:
    cycles = [w for c in measured for w in (c.warmup, c) if w is not None]
    dirty = [(c, p) for c in cycles for p in c.phases if any(s.errors for s in p.ops.values())]
    if not dirty:
        return "No request failed (HTTP status != 200, errno != 0 or a transport failure)."
    total = sum(s.errors.total() for _, p in dirty for s in p.ops.values())
    lines = [
        f"**!!! THIS RUN HAD ERRORS: {total} failed requests — the numbers above are not "
        "clean. !!!**",
        "",
    ]
    for cycle, p in dirty:
        for op, stats in p.ops.items():
            for label, count in stats.errors.most_common(5):
                lines.append(f"- {cycle.label} {OP_LABELS[op]}: {count} x `{label}`")
    return "\n".join(lines)


def report(
    cycles: list[Cycle],
    top: Cycle | None,
    args: argparse.Namespace,
    started: dt.datetime,
    phases: Phases,
) -> str:
    if args.http_url:
        server = f"external server at {args.http_url} (model latency: its own)"
    else:
        server = (
            "own stack per model latency (FerretDB on PostgreSQL + redis-server + scripted "
            f"model + server, LOG_LEVEL {args.log_level}, "
            + (
                "default memory settings"
                if args.buffer_tokens is None
                else f"max_chat_blob_buffer_token_size {args.buffer_tokens}"
            )
            + ")"
        )
    header = [
        f"# Memory-loop benchmark, {started:%Y-%m-%d %H:%M}",
        "",
        f"commit {args.commit}; {os.cpu_count()} x {_cpu_model()}; Python "
        f"{platform.python_version()}; {server}; load average before start "
        f"{args.start_load:.2f}; run time {phases}.",
        f"Workload: {args.users} users x {args.blobs} chat blobs (`bench.chats`, seed "
        f"{args.seed}), REST, {args.concurrency} clients in a closed loop (each runs one user's "
        "step at a time, then takes the next user) in one asyncio process (a lean HTTP/1.1 "
        "keep-alive client, a connection per client). Phases, "
        "each over every user and over before the next: create, insert (a user's blobs in "
        "order), flush (sync flush `wait_process=true`, then at once the user's first context "
        f"read, `max_token_size={READ_MAX_TOKEN_SIZE}`, while other users' flushes run), "
        "cached read (the same read again), delete. ops/s: successful requests over the "
        "phase's wall time (the first read runs inside the flush phase, at its pace); "
        "latency of successful requests (nearest rank). Before each measured loop, on the same "
        f"server: an untimed loop over {args.warmup_users} other user(s) (a fresh database "
        "creates its tables on first use)."
        + (
            f" No-op ceiling: the same loop at the same concurrency against "
            f"`bench.noop_server --http-port` (uvicorn + httptools answering canned "
            f"envelopes, no gateway, auth or storage), {args.ceiling_repeats} repeats pooled."
            if top is not None
            else ""
        ),
    ]
    if not args.http_url:
        now = _git_commit()
        ran = sorted(set(args.commits.values()))
        if ran != [args.commit] or now != args.commit:
            header.append(
                "**The checkout changed during the run: the servers ran "
                + ", ".join(f"{label}: {commit}" for label, commit in args.commits.items())
                + f"; now {now}.**"
            )
    sections = [
        "\n".join(header),
        results_table(cycles, top),
        flush_section(cycles, top),
    ]
    for cycle in cycles:
        if cycle.notes:
            sections.append(f"{cycle.label}: " + "; ".join(cycle.notes) + ".")
    sections += [errors_section([*cycles, *([top] if top else [])])]
    sections.append(cpu_table([*cycles, *([top] if top else [])]))
    for cycle in cycles:
        sections += stack_log_sections(cycle.server_log, cycle.ferretdb_log, cycle.label)
    return "\n\n".join(sections) + "\n"


# ---------------------------------------------------------------- main


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m bench.cycle",
        description="The memory loop over REST: insert, sync flush, first and cached "
        "context read, delete; per phase throughput, latency and CPU.",
    )
    parser.add_argument("--users", type=int, default=50, help="users, each its own loop")
    parser.add_argument("--blobs", type=int, default=20, help="chat blobs per user")
    parser.add_argument("--seed", type=int, default=1, help="seed of the generated chats")
    parser.add_argument("--concurrency", type=int, default=16, help="clients (closed loop)")
    parser.add_argument(
        "--latencies",
        default="0,800",
        help="scripted-model latencies (ms per call), a fresh stack each (own stack only)",
    )
    parser.add_argument(
        "--buffer-tokens",
        type=int,
        help="own stack: the server's max_chat_blob_buffer_token_size (default: the server's "
        "default, 1024, as upstream's; a large value leaves every flush to the flush phase)",
    )
    parser.add_argument(
        "--warmup-users",
        type=int,
        default=1,
        help="users of an untimed loop on each server just before the measured one",
    )
    parser.add_argument(
        "--ceiling-repeats", type=int, default=5, help="runs of the loop on the no-op server"
    )
    parser.add_argument("--timeout", type=float, default=180.0, help="per-request timeout (s)")
    parser.add_argument("--http-url", help="a running server's REST base URL (loopback)")
    parser.add_argument("--token", help="its token (default: env ACCESS_TOKEN)")
    parser.add_argument(
        "--cpu-group",
        action="append",
        default=[],
        metavar="NAME=PID[,PID]",
        help="with --http-url: processes of that server (with descendants) for the CPU table",
    )
    parser.add_argument(
        "--wait-idle",
        type=float,
        default=0.0,
        help="first wait up to this many seconds for a load average below --max-load",
    )
    parser.add_argument("--max-load", type=float, default=1.5, help="see --wait-idle")
    parser.add_argument("--out", type=pathlib.Path, help="report file (default bench/results/)")
    parser.add_argument("--keep", action="store_true", help="keep the work dir (logs, data)")
    parser.add_argument("--log-level", default="WARNING", help="own stack: the server's log level")
    return parser


def _validate(args: argparse.Namespace) -> None:
    if min(args.users, args.blobs, args.concurrency) < 1:
        raise SystemExit("--users, --blobs and --concurrency must be positive")
    if min(args.ceiling_repeats, args.warmup_users) < 0:
        raise SystemExit("--ceiling-repeats and --warmup-users must not be negative")
    if args.timeout <= 0:
        raise SystemExit("--timeout must be positive")
    try:
        args.latency_list = [int(v) for v in args.latencies.split(",") if v.strip()]
    except ValueError:
        raise SystemExit(
            f"--latencies: integers (ms), comma-separated (got {args.latencies!r})"
        ) from None
    if not args.latency_list or min(args.latency_list) < 0:
        raise SystemExit("--latencies: at least one latency, none negative")
    args.groups = {}
    for raw in args.cpu_group:
        name, _, pids = raw.partition("=")
        try:
            args.groups[name.strip()] = [int(p) for p in pids.split(",") if p.strip()]
        except ValueError:
            raise SystemExit(f"--cpu-group: NAME=PID[,PID] (got {raw!r})") from None
        if not name.strip() or not args.groups[name.strip()]:
            raise SystemExit(f"--cpu-group: NAME=PID[,PID] (got {raw!r})")
    if args.http_url:
        _check_loopback(urlsplit(args.http_url).hostname, "--http-url")
        args.http_url = args.http_url.rstrip("/")
        args.token = args.token or os.environ.get("ACCESS_TOKEN")
        if not args.token:
            raise SystemExit("--token (or ACCESS_TOKEN) is required with --http-url")
    elif args.cpu_group:
        raise SystemExit("--cpu-group goes with --http-url")
    if args.buffer_tokens is not None and (args.http_url or args.buffer_tokens < 1):
        raise SystemExit("--buffer-tokens: a positive number, for the own stack only")


def _measure(
    args: argparse.Namespace, work: Workload, workdir: pathlib.Path, phases: Phases
) -> tuple[list[Cycle], Cycle | None]:
    if args.http_url:
        args.commit = "external server"
        groups = Groups(args.groups, {os.getpid(), *(p for g in args.groups.values() for p in g)})
        print(f"bench: the loop against {args.http_url}", file=sys.stderr, flush=True)
        warm = warm_up(EXTERNAL, args.http_url, args.token, work, groups)
        cycle = _run_async(run_cycle(EXTERNAL, args.http_url, args.token, work, groups))
        cycle.warmup = warm
        phases.done("loop")
        return [cycle], None
    top = None
    if args.ceiling_repeats:
        print("bench: the no-op ceiling", file=sys.stderr, flush=True)
        top = ceiling(work, workdir / "noop", args.ceiling_repeats)
        phases.done("no-op ceiling")
    cycles = []
    args.commits = {}
    for latency_ms in args.latency_list:
        cycle, commit = own_cycle(
            latency_ms,
            work,
            workdir / f"{latency_ms}ms",
            phases,
            args.buffer_tokens,
            args.log_level,
        )
        cycles.append(cycle)
        args.commits[cycle.label] = commit
    args.commit = next(iter(args.commits.values()))
    return cycles, top


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    _validate(args)

    def measure(workdir: pathlib.Path, started: dt.datetime) -> tuple[str, bool]:
        print(f"bench: work dir {workdir}", file=sys.stderr, flush=True)
        work = Workload(
            [user_chats(args.seed, n, args.blobs) for n in range(args.users)],
            args.concurrency,
            args.timeout,
            [user_chats(args.seed, args.users + n, args.blobs) for n in range(args.warmup_users)],
        )
        phases = Phases()
        cycles, top = _measure(args, work, workdir, phases)
        clean = all(c.clean for c in [*cycles, *([top] if top else [])])
        return report(cycles, top, args, started, phases), clean

    return run_bench("cycle", args, measure)


if __name__ == "__main__":
    raise SystemExit(main())
