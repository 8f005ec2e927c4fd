"""Flush benchmark: the memory pipeline behind the scripted model, never part of CI.

    python -m bench.flush                # ~4-5 min on 2 cores; starts FerretDB, redis-server,
                                         # the scripted model and servers on loopback ports
    python -m bench.flush --users 50 --latencies 300   # the full 50-user workload per run

Workload: users with 20 chat blobs each (~1.4k chat tokens per user), varied English chat
turns (names, ages, cities, employers, jobs, hobbies, family, plans), inserted over REST and
then flushed once per user. Each run gets a fresh server and database: FerretDB scans whole
collections for most queries, so a fuller database is a slower one, and 50 users per run
(1000 blobs) take over 2 minutes a run here; runs have `--users` (25) users each instead,
4 runs (100 users, 2000 blobs) in all.

Measured:
- throughput: the server runs no flush workers (`MEMOBASE_FLUSH_WORKERS=0`); 1, then 2,
  `memobase-server worker` processes (4 concurrent flushes each) drain one flush job per user,
  with the scripted model answering every call after 300 ms (network-bound, like a real model)
  and after 0 ms (CPU-bound). Time runs from the first flush request to the last commit
  recorded in MongoDB; CPU per process group over the same window (bench.cpu) shows the
  bottleneck.
- latency: p50 of a sync flush (`wait_process=true`, one at a time, 20 blobs) at 0 and 300 ms
  per model call, and p50 of a flush's claim-to-commit time inside the throughput runs.
- tokens per flush and per user (20 blobs) by step, as the scripted model counted them (calls,
  prompt and completion tokens; embeddings), compared with upstream Memobase's 10.3k prompt
  + 1.8k completion tokens per user per 20 blobs, and checked against what the `usage`
  collection recorded (`steps.<step>.input_tokens`).

Prints a Markdown table and writes it to `bench/results/flush-<date>.md` (git-ignored).
Every process it starts is stopped on exit, Ctrl-C or SIGTERM.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime as dt
import math
import os
import pathlib
import platform
import random
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from types import FrameType
from typing import Any

import httpx
import redis
from pymongo import MongoClient
from pymongo.database import Database

from bench import cpu
from memobase_server.storage.redis import keys
from tests import servers
from tests.conftest import ROOT_TOKEN, ScriptedLLM, start_server, start_worker, stop_server

REPO_ROOT = pathlib.Path(__file__).resolve().parent.parent
RESULTS_DIR = REPO_ROOT / "bench" / "results"
UPSTREAM_PROMPT_PER_USER = 10_300
UPSTREAM_COMPLETION_PER_USER = 1_800
SCALE_TARGET = 1.8
FLUSHES_PER_WORKER = 4
INSERT_CONCURRENCY = 16
INSERT_ATTEMPTS = 5
RUN_TIMEOUT_S = 120.0
UNSETTLED = ["idle", "processing", "failed"]
BENCH_ENV = {
    "MEMOBASE_LOG_LEVEL": "WARNING",
    "MEMOBASE_FLUSH_WORKERS": "0",
    # Nothing flushes by itself: each run flushes every user once, on request.
    "MEMOBASE_MAX_CHAT_BLOB_BUFFER_TOKEN_SIZE": "1000000",
    "MEMOBASE_BUFFER_FLUSH_INTERVAL": "100000",
    "MEMOBASE_RECONCILE_INTERVAL_SECONDS": "100000",
    "MEMOBASE_LLM_TIMEOUT_SECONDS": "30",
    "MEMOBASE_LLM_MAX_RETRIES": "2",
    "MEMOBASE_FLUSH_LEASE_SECONDS": "60",
}
Db = Database[dict[str, Any]]

# --- realistic chats ----------------------------------------------------------------------------

FIRST_NAMES = (
    "Amara",
    "Bruno",
    "Chiara",
    "Dmitri",
    "Elena",
    "Farah",
    "Gustavo",
    "Hana",
    "Ibrahim",
    "Julia",
    "Kenji",
    "Leila",
    "Mateo",
    "Nadia",
    "Oskar",
    "Priya",
    "Quentin",
    "Rosa",
    "Samir",
    "Tereza",
    "Umar",
    "Valentina",
    "Wei",
    "Ximena",
    "Yusuf",
    "Zofia",
)
LAST_NAMES = (
    "Okafor",
    "Rossi",
    "Novak",
    "Tanaka",
    "Haddad",
    "Silva",
    "Larsen",
    "Mendez",
    "Kowalski",
    "Nguyen",
    "Fischer",
    "Dubois",
    "Patel",
    "Moreau",
    "Ivanova",
    "Costa",
    "Brennan",
    "Sato",
)
CITIES = (
    "Lisbon",
    "Oslo",
    "Nairobi",
    "Kyoto",
    "Denver",
    "Porto",
    "Tallinn",
    "Austin",
    "Lima",
    "Melbourne",
    "Montreal",
    "Krakow",
    "Seville",
    "Edinburgh",
    "Busan",
    "Cape Town",
)
EMPLOYERS = (
    "Northwind Traders",
    "Blue Harbor Labs",
    "Copperleaf Health",
    "Atlas Logistics",
    "Greenfield Schools",
    "Riverside Hospital",
    "Lumen Analytics",
    "Oak and Iron Studio",
    "Solace Insurance",
    "Brightpath Energy",
)
TITLES = (
    "software engineer",
    "nurse",
    "high school teacher",
    "architect",
    "data analyst",
    "pastry chef",
    "graphic designer",
    "pharmacist",
    "civil engineer",
    "journalist",
    "product manager",
    "electrician",
)
HOBBIES = (
    "tennis",
    "jazz music",
    "sushi",
    "science fiction novels",
    "yoga",
    "old films",
    "rock climbing",
    "baking sourdough",
    "chess",
    "trail running",
    "board games",
    "pottery",
    "swimming",
    "coffee roasting",
)
RELATIONS = ("sister", "brother", "best friend", "partner", "mother", "father", "cousin")
MONTHS = ("March", "April", "May", "June", "July", "August", "September", "October")
PLANS = (
    "a trip to {city} in {month}",
    "a half marathon in {month}",
    "learning Portuguese before the summer",
    "renovating the kitchen",
    "adopting a rescue dog",
    "asking for a four-day week",
    "visiting my {relation} in {city} in {month}",
    "a cooking class with my {relation}",
)
REPLIES = (
    "That sounds exciting! How long have you been thinking about it?",
    "Nice. What do you enjoy most about it?",
    "Got it, I'll keep that in mind for next time.",
    "Interesting, tell me more when you have a minute.",
    "That must keep you busy. How are you finding the balance?",
    "Lovely. Do you want me to remind you about it later?",
    "Thanks for sharing that with me.",
    "Sounds like a good plan. Anything I can help you prepare?",
)


@dataclass
class Persona:
    name: str
    age: int
    city: str
    employer: str
    title: str
    hobbies: list[str]
    relation: str
    relative: str


def persona(rng: random.Random) -> Persona:
    return Persona(
        name=f"{rng.choice(FIRST_NAMES)} {rng.choice(LAST_NAMES)}",
        age=rng.randint(21, 68),
        city=rng.choice(CITIES),
        employer=rng.choice(EMPLOYERS),
        title=rng.choice(TITLES),
        hobbies=rng.sample(HOBBIES, 4),
        relation=rng.choice(RELATIONS),
        relative=rng.choice(FIRST_NAMES),
    )


def user_turn(rng: random.Random, p: Persona, index: int) -> str:
    """One user message: a fact about them (some change over time) or small talk."""
    kind = index if index < 4 else rng.randrange(11)
    plan = rng.choice(PLANS).format(
        city=rng.choice(CITIES), month=rng.choice(MONTHS), relation=p.relation
    )
    if kind == 0:
        return f"Hi there! My name is {p.name}, nice to finally talk to you."
    if kind == 1:
        return f"I am {p.age} years old and I live in {p.city} with my {p.relation}."
    if kind == 2:
        return f"I work at {p.employer}, mostly remote but in the office on Tuesdays."
    if kind == 3:
        return f"I am a {p.title}, and honestly the job is more fun than it sounds."
    if kind == 4:
        return f"I love {rng.choice(p.hobbies)}, it is how I unwind after a long week."
    if kind == 5:
        return f"Next month I am planning {plan}, still sorting out the details."
    if kind == 6:
        return (
            f"My {p.relation} {p.relative} is visiting this weekend; we might try a new "
            "restaurant downtown."
        )
    if kind == 7:
        p.city = rng.choice(CITIES)
        return f"Big news: I moved to {p.city} last week, boxes everywhere."
    if kind == 8:
        p.title = rng.choice(TITLES)
        return f"I am a {p.title} now, I switched roles after a long conversation with my boss."
    if kind == 9:
        return f"I enjoy {rng.choice(HOBBIES)} too, a friend got me into it recently."
    return f"Work has been hectic, we ship a big release on {rng.choice(MONTHS)} 3rd."


def chat_blob(rng: random.Random, p: Persona, index: int) -> list[dict[str, str]]:
    messages = [
        {"role": "user", "content": user_turn(rng, p, index)},
        {"role": "assistant", "content": rng.choice(REPLIES)},
    ]
    if rng.random() < 0.75:
        messages.append({"role": "user", "content": user_turn(rng, p, 4)})
    return messages


# --- the stack ----------------------------------------------------------------------------------


def _on_sigterm(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt  # unwinds through the ExitStack, which stops every child


@dataclass
class Infra:
    """What every run shares: FerretDB, redis-server and the scripted model."""

    workdir: pathlib.Path
    mongo_url: str
    redis_url: str
    llm: ScriptedLLM
    client: MongoClient[dict[str, Any]]
    pids: dict[str, list[int]]


@dataclass
class Stack:
    """A server on a database and Redis namespace of its own (each run starts empty: FerretDB
    scans whole collections for most queries, so a fuller database is a slower one)."""

    workdir: pathlib.Path
    mongo_url: str
    redis_url: str
    llm: ScriptedLLM
    database: str
    env: dict[str, str]
    http_url: str
    db: Db
    pids: dict[str, list[int]]
    """CPU groups: the processes of the stack (workers are added per run)."""


@contextlib.contextmanager
def infrastructure(workdir: pathlib.Path) -> Iterator[Infra]:
    with contextlib.ExitStack() as exits:
        mongo = exits.enter_context(servers.start_ferretdb(workdir / "ferretdb"))
        redis_server = exits.enter_context(servers.start_redis(workdir / "redis"))
        llm_port = servers.free_port()
        with (workdir / "scripted-llm.log").open("ab") as log:
            llm_process = subprocess.Popen(
                [sys.executable, "-m", "memobase_server", "scripted-llm", "--port", str(llm_port)],
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        exits.callback(stop_server, llm_process)
        servers.wait_for_port("127.0.0.1", llm_port, 30, process=llm_process)
        client: MongoClient[dict[str, Any]] = MongoClient(mongo.url, tz_aware=True)
        exits.callback(client.close)
        yield Infra(
            workdir,
            mongo.url,
            redis_server.url,
            ScriptedLLM(f"http://127.0.0.1:{llm_port}", llm_process),
            client,
            {"ferretdb": [mongo.pid], "redis": [redis_server.pid], "model": [llm_process.pid]},
        )


@contextlib.contextmanager
def deployment(infra: Infra, name: str) -> Iterator[Stack]:
    workdir = infra.workdir / name
    workdir.mkdir(parents=True, exist_ok=True)
    database = f"bench_flush_{uuid.uuid4().hex[:8]}"
    env = {**infra.llm.server_env(), **BENCH_ENV, "PROJECT_ID": f"bench-{uuid.uuid4().hex[:6]}"}
    process, _, http_port, _ = start_server(
        workdir, infra.mongo_url, infra.redis_url, database, **env
    )
    try:
        yield Stack(
            workdir,
            infra.mongo_url,
            infra.redis_url,
            infra.llm,
            database,
            env,
            f"http://127.0.0.1:{http_port}",
            infra.client[database],
            {**infra.pids, "server": [process.pid]},
        )
    finally:
        stop_server(process)
        infra.client.drop_database(database)


@contextlib.contextmanager
def worker_processes(s: Stack, count: int) -> Iterator[list[subprocess.Popen[bytes]]]:
    started: list[subprocess.Popen[bytes]] = []
    try:
        for i in range(count):
            process, _ = start_worker(
                s.workdir,
                s.mongo_url,
                s.redis_url,
                s.database,
                name=f"worker{i}",
                # INFO: start_worker waits for the "ready" line.
                **{
                    **s.env,
                    "MEMOBASE_FLUSH_WORKERS": str(FLUSHES_PER_WORKER),
                    "MEMOBASE_LOG_LEVEL": "INFO",
                },
            )
            started.append(process)
        yield started
    finally:
        for process in started:
            stop_server(process)


# --- the workload -------------------------------------------------------------------------------


def _ok(reply: httpx.Response) -> Any:
    reply.raise_for_status()
    envelope = reply.json()
    if envelope["errno"] != 0:
        raise RuntimeError(f"{reply.request.url}: {envelope}")
    return envelope["data"]


async def load_users(s: Stack, users: int, blobs: int, seed: int) -> list[str]:
    """Creates the users and inserts their blobs (each user's in order); returns their ids."""
    rng = random.Random(seed)
    chats = []
    for _ in range(users):
        p = persona(rng)
        chats.append([chat_blob(rng, p, i) for i in range(blobs)])
    gate = asyncio.Semaphore(INSERT_CONCURRENCY)
    retries: Counter[str] = Counter()
    async with httpx.AsyncClient(
        base_url=f"{s.http_url}/api/v1",
        headers={"Authorization": f"Bearer {ROOT_TOKEN}"},
        timeout=60,
    ) as http:

        async def insert(user_id: str, messages: list[dict[str, str]]) -> None:
            """Retried with one idempotency key: FerretDB can answer "database is locked"."""
            body = {"blob_type": "chat", "blob_data": {"messages": messages}}
            params = {"idempotency_key": uuid.uuid4().hex}
            for attempt in range(INSERT_ATTEMPTS):
                reply = await http.post(f"/blobs/insert/{user_id}", json=body, params=params)
                reply.raise_for_status()
                if reply.json()["errno"] == 0:
                    return
                retries["insert"] += 1
                await asyncio.sleep(0.2 * (attempt + 1))
            _ok(reply)

        async def one(messages_per_blob: list[list[dict[str, str]]]) -> str:
            async with gate:
                user_id: str = _ok(await http.post("/users", json={"data": {}}))["id"]
                for messages in messages_per_blob:
                    await insert(user_id, messages)
                return user_id

        user_ids = list(await asyncio.gather(*(one(c) for c in chats)))
    if retries:
        print(f"(inserts retried {retries['insert']} times)", file=sys.stderr)
    return user_ids


def chat_tokens(s: Stack, user_ids: Sequence[str]) -> int:
    total = 0
    for doc in s.db["blobs"].find(
        {"user_id": {"$in": list(user_ids)}}, projection={"buffer.token_size": 1}
    ):
        total += int(doc["buffer"]["token_size"])
    return total


def step_usage(s: Stack) -> dict[str, Counter[str]]:
    steps: dict[str, Counter[str]] = {}
    for doc in s.db["usage"].find({}):
        for step, counts in (doc.get("steps") or {}).items():
            steps.setdefault(step, Counter()).update(
                {k: int(v) for k, v in counts.items() if isinstance(v, int)}
            )
    return steps


def usage_delta(
    before: dict[str, Counter[str]], after: dict[str, Counter[str]]
) -> dict[str, Counter[str]]:
    delta = {}
    for step, counts in after.items():
        grown = Counter(counts)
        grown.subtract(before.get(step, Counter()))
        delta[step] = grown
    return delta


def percentile(values: Sequence[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[max(0, math.ceil(q * len(ordered)) - 1)] if ordered else math.nan


@dataclass
class Run:
    workers: int
    latency_ms: int
    users: int
    flushes: int
    failed: int
    retried: int
    seconds: float
    chats: int
    chat_tokens: int
    flush_ms: list[float]
    usage: dict[str, Counter[str]]
    llm_stats: dict[str, Any]
    cpu: cpu.Usage

    @property
    def flushes_per_s(self) -> float:
        return self.flushes / self.seconds if self.seconds else 0.0

    @property
    def chats_per_s(self) -> float:
        return self.chats / self.seconds if self.seconds else 0.0


def drain(s: Stack, http: httpx.Client, user_ids: list[str], what: str) -> int:
    """Waits until every flush job is done and no chat of `user_ids` waits any more. Polls
    Redis (acknowledged jobs are deleted from the stream), not FerretDB, whose every query
    here would scan a collection and slow the flushes down. A flush that fails (FerretDB
    answers "database is locked" under load) leaves its chats waiting and its job
    acknowledged, and no reconcile pass runs here: such users are asked for again. Returns
    how many requests that took."""
    waiting_filter = {"user_id": {"$in": user_ids}, "buffer.status": {"$in": UNSETTLED}}
    stream = keys.flush_stream(s.env["PROJECT_ID"])
    deadline = time.monotonic() + RUN_TIMEOUT_S
    retried = 0
    with redis.Redis.from_url(s.redis_url) as queue:
        while True:
            if time.monotonic() > deadline:
                raise TimeoutError(f"{what}: flushes unfinished after {RUN_TIMEOUT_S:.0f} s")
            if queue.xlen(stream):
                time.sleep(0.25)
                continue
            waiting = s.db["blobs"].distinct("user_id", waiting_filter)
            if not waiting:
                return retried
            for user_id in waiting:
                _ok(http.post(f"/users/buffer/{user_id}/chat", params={"wait_process": "false"}))
                retried += 1
            time.sleep(0.25)


def throughput_run(
    s: Stack, *, workers: int, latency_ms: int, users: int, blobs: int, seed: int
) -> Run:
    loading = time.monotonic()
    user_ids = asyncio.run(load_users(s, users, blobs, seed))
    print(f"({users * blobs} inserts in {time.monotonic() - loading:.1f} s)", file=sys.stderr)
    tokens = chat_tokens(s, user_ids)
    s.llm.reset()
    s.llm.faults(mode="none", latency_ms=latency_ms)
    before = step_usage(s)
    with worker_processes(s, workers) as processes:
        groups = {**s.pids, "workers": [p.pid for p in processes], "bench": [os.getpid()]}
        cpu_before = cpu.snapshot(groups)
        start_wall = dt.datetime.now(dt.UTC)
        with httpx.Client(
            base_url=f"{s.http_url}/api/v1",
            headers={"Authorization": f"Bearer {ROOT_TOKEN}"},
            timeout=60,
        ) as http:
            for user_id in user_ids:
                _ok(http.post(f"/users/buffer/{user_id}/chat", params={"wait_process": "false"}))
            retried = drain(s, http, user_ids, f"{workers} worker(s) at {latency_ms} ms")
        cpu_after = cpu.snapshot(groups)
    records = list(s.db["flushes"].find({"user_id": {"$in": user_ids}}))
    last_commit = max(r["updated_at"] for r in records if r["state"] == "committed")
    stats = s.llm.stats()
    s.llm.reset()
    return Run(
        workers=workers,
        latency_ms=latency_ms,
        users=len(user_ids),
        flushes=sum(1 for r in records if r["state"] == "committed"),
        failed=sum(1 for r in records if r["state"] != "committed"),
        retried=retried,
        seconds=(last_commit - start_wall).total_seconds(),
        chats=sum(len(r["blob_ids"]) for r in records if r["state"] == "committed"),
        chat_tokens=tokens,
        flush_ms=[
            (r["updated_at"] - r["created_at"]).total_seconds() * 1000
            for r in records
            if r["state"] == "committed"
        ],
        usage=usage_delta(before, step_usage(s)),
        llm_stats=stats,
        cpu=cpu.usage(cpu_before, cpu_after),
    )


def sync_latencies(s: Stack, *, latency_ms: int, users: int, blobs: int, seed: int) -> list[float]:
    """Client-side time of sync flushes, one at a time (run by the server process itself)."""
    user_ids = asyncio.run(load_users(s, users, blobs, seed))
    s.llm.reset()
    s.llm.faults(mode="none", latency_ms=latency_ms)
    timings = []
    with httpx.Client(
        base_url=f"{s.http_url}/api/v1",
        headers={"Authorization": f"Bearer {ROOT_TOKEN}"},
        timeout=120,
    ) as http:
        for user_id in user_ids:
            started = time.perf_counter()
            reply = http.post(f"/users/buffer/{user_id}/chat", params={"wait_process": "true"})
            reply.raise_for_status()
            if reply.json()["errno"] == 0:
                timings.append((time.perf_counter() - started) * 1000)
            else:
                print(f"sync flush failed: {reply.json()}", file=sys.stderr)
    s.llm.reset()
    return timings


# --- report -------------------------------------------------------------------------------------


@dataclass
class Report:
    runs: list[Run] = field(default_factory=list)
    sync_ms: dict[int, list[float]] = field(default_factory=dict)

    def run(self, workers: int, latency_ms: int) -> Run | None:
        return next(
            (r for r in self.runs if r.workers == workers and r.latency_ms == latency_ms), None
        )


def _cores(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"


def render(report: Report, args: argparse.Namespace, elapsed_s: float) -> str:
    lines = [
        f"# Flush benchmark ({dt.datetime.now():%Y-%m-%d %H:%M})",
        "",
        f"Workload: {args.users} users x {args.blobs} chat blobs per run (fresh database each), "
        "one flush per user; "
        f"{FLUSHES_PER_WORKER} concurrent flushes per worker process; scripted model; "
        f"FerretDB (SQLite) + redis-server on loopback. Machine: {platform.machine()}, "
        f"{os.cpu_count()} CPUs, Python {platform.python_version()}. Run time {elapsed_s:.0f} s.",
        "",
        "## Throughput (worker processes draining one flush job per user)",
        "",
        "| model latency | workers | flushes | failed / re-asked | seconds | flushes/s "
        "| chats/s | flush p50 ms | flush p95 ms | vs 1 worker |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    for run in report.runs:
        base = report.run(1, run.latency_ms)
        ratio = run.flushes_per_s / base.flushes_per_s if base and base.flushes_per_s else math.nan
        target = ""
        if run.workers == 2:
            target = f" (target ≥{SCALE_TARGET}x: " + ("met" if ratio >= SCALE_TARGET else "missed")
            target += ")"
        lines.append(
            f"| {run.latency_ms} ms | {run.workers} | {run.flushes} "
            f"| {run.failed} / {run.retried} | {run.seconds:.1f} | {run.flushes_per_s:.2f} "
            f"| {run.chats_per_s:.1f} "
            f"| {percentile(run.flush_ms, 0.5):.0f} | {percentile(run.flush_ms, 0.95):.0f} "
            f"| {ratio:.2f}x{target} |"
        )
    lines += [
        "",
        "CPU over each throughput window, in cores (1.00 = one core busy):",
        "",
        "| model latency | workers | worker procs | server | FerretDB | model | Redis "
        "| this client | other programs | whole machine |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for run in report.runs:
        c = run.cpu.cores
        lines.append(
            f"| {run.latency_ms} ms | {run.workers} | {_cores(c.get('workers'))} "
            f"| {_cores(c.get('server'))} | {_cores(c.get('ferretdb'))} "
            f"| {_cores(c.get('model'))} | {_cores(c.get('redis'))} "
            f"| {_cores(c.get('bench'))} | {run.cpu.foreign_cores:.2f} "
            f"| {_cores(run.cpu.machine_cores)} |"
        )
    lines += [
        "",
        "## Latency of one flush (20 blobs)",
        "",
        "| model latency per call | sync flush p50 ms (one at a time) | sync flushes "
        "| claim-to-commit p50 ms (1 worker, 4 at a time) |",
        "|---:|---:|---:|---:|",
    ]
    for latency_ms, timings in sorted(report.sync_ms.items()):
        loaded = report.run(1, latency_ms)
        under_load = f"{percentile(loaded.flush_ms, 0.5):.0f}" if loaded else "-"
        lines.append(
            f"| {latency_ms} ms | {percentile(timings, 0.5):.0f} | {len(timings)} | {under_load} |"
        )
    lines += _token_lines(report)
    return "\n".join(lines)


def _token_lines(report: Report) -> list[str]:
    calls: Counter[str] = Counter()
    prompt: Counter[str] = Counter()
    completion: Counter[str] = Counter()
    recorded: Counter[str] = Counter()
    users = flushes = chat_tokens = embedding_tokens = embedding_calls = 0
    for run in report.runs:
        calls.update(run.llm_stats.get("calls", {}))
        prompt.update(run.llm_stats.get("prompt_tokens", {}))
        completion.update(run.llm_stats.get("completion_tokens", {}))
        embedding_tokens += int(run.llm_stats.get("embedding_tokens", 0))
        embedding_calls += int(run.llm_stats.get("embedding_calls", 0))
        for step, counts in run.usage.items():
            recorded[step] += counts["input_tokens"]
        users += run.users
        flushes += run.flushes
        chat_tokens += run.chat_tokens
    if not users or not flushes:
        return []
    lines = [
        "",
        f"## Tokens ({users} users, {flushes} flushes over every throughput run; "
        f"{chat_tokens / users:.0f} chat tokens per user)",
        "",
        "As the scripted model counted them (tiktoken over the prompts this server sends and "
        "the answers the script gives: a real model's answers differ in length, prompts do not).",
        "",
        "| step | calls per flush | prompt tokens per flush | completion tokens per flush "
        "| prompt per user (20 blobs) | completion per user (20 blobs) |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for step in sorted(calls):
        lines.append(
            f"| {step} | {calls[step] / flushes:.2f} | {prompt[step] / flushes:.0f} "
            f"| {completion[step] / flushes:.0f} | {prompt[step] / users:.0f} "
            f"| {completion[step] / users:.0f} |"
        )
    all_prompt, all_completion = prompt.total(), completion.total()
    lines += [
        f"| **all LLM steps** | {calls.total() / flushes:.2f} | {all_prompt / flushes:.0f} "
        f"| {all_completion / flushes:.0f} | **{all_prompt / users:.0f}** "
        f"| **{all_completion / users:.0f}** |",
        f"| upstream Memobase | | | | {UPSTREAM_PROMPT_PER_USER} "
        f"| {UPSTREAM_COMPLETION_PER_USER} |",
        f"| ratio to upstream | | | | {all_prompt / users / UPSTREAM_PROMPT_PER_USER:.2f}x "
        f"| {all_completion / users / UPSTREAM_COMPLETION_PER_USER:.2f}x |",
        f"| embeddings (gists) | {embedding_calls / flushes:.2f} "
        f"| {embedding_tokens / flushes:.0f} | | {embedding_tokens / users:.0f} | |",
        "",
        f"The `usage` collection recorded {recorded.total()} of these {all_prompt} prompt tokens "
        f"({recorded.total() / all_prompt:.0%})"
        + (
            "."
            if recorded.total() == all_prompt
            else ": concurrent `$inc` upserts on one document lose increments on FerretDB."
        ),
        "",
    ]
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.flush", description=__doc__)
    parser.add_argument(
        "--users", type=int, default=25, help="users per throughput run (4 runs: 100 in all)"
    )
    parser.add_argument("--blobs", type=int, default=20)
    parser.add_argument("--sync-users", type=int, default=10, help="sync flushes per latency")
    parser.add_argument(
        "--latencies",
        default="300,0",
        help="model latencies (ms) of the throughput runs, comma-separated",
    )
    parser.add_argument("--out", type=pathlib.Path, default=None)
    parser.add_argument("--workdir", type=pathlib.Path, help="keep data and logs here")
    args = parser.parse_args(argv)
    previous_sigterm = signal.signal(signal.SIGTERM, _on_sigterm)
    started = time.monotonic()
    stamp = dt.datetime.now()
    report = Report()
    try:
        with contextlib.ExitStack() as exits:
            workdir = args.workdir or pathlib.Path(
                exits.enter_context(tempfile.TemporaryDirectory(prefix="bench-flush-"))
            )
            workdir.mkdir(parents=True, exist_ok=True)
            infra = exits.enter_context(infrastructure(workdir))
            seed = 0
            for latency_ms in [int(v) for v in args.latencies.split(",")]:
                for workers in (1, 2):
                    seed += 1
                    with deployment(infra, f"run-{latency_ms}ms-{workers}w") as s:
                        run = throughput_run(
                            s,
                            workers=workers,
                            latency_ms=latency_ms,
                            users=args.users,
                            blobs=args.blobs,
                            seed=seed,
                        )
                    report.runs.append(run)
                    c = run.cpu.cores
                    print(
                        f"{latency_ms} ms, {workers} worker(s): {run.flushes} flushes in "
                        f"{run.seconds:.1f} s ({run.flushes_per_s:.2f}/s); cores: "
                        + ", ".join(f"{k} {_cores(v)}" for k, v in c.items())
                        + f", other programs {run.cpu.foreign_cores:.2f}",
                        file=sys.stderr,
                    )
            for latency_ms in (0, 300):
                seed += 1
                with deployment(infra, f"sync-{latency_ms}ms") as s:
                    report.sync_ms[latency_ms] = sync_latencies(
                        s,
                        latency_ms=latency_ms,
                        users=args.sync_users,
                        blobs=args.blobs,
                        seed=seed,
                    )
    finally:
        signal.signal(signal.SIGTERM, previous_sigterm)
    text = render(report, args, time.monotonic() - started)
    print(text)
    out = args.out or RESULTS_DIR / f"flush-{stamp:%Y-%m-%dT%H%M%S}.md"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(text)
    print(f"written to {out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
