"""Growth benchmark: does the memory loop stay as fast when the database holds many more users,
or users with much longer histories? Never part of CI.

    python -m bench.growth                         # 100x50, 10000x50 and 50x1000 (~15 min)
    python -m bench.growth --sizes 100x50,1000x50  # quicker

Each size `NxG` gets a fresh stack on loopback (FerretDB on its PostgreSQL cluster, redis-server,
the scripted model, the server), seeded before the server starts with N users of G event gists
each (events of 5 gists, a profile of 10 slots), written through the server's own storage
adapters: MongoDB documents shaped as a flush writes them and every gist's vector in the
vector index (`EdgeGistIndex`, the default in-process engine, at the path the server then
opens). Then `--live` of those users (50) live through the loop over REST, `--concurrency` (16)
at a time, each: `--blobs` (5) chat inserts, a sync flush, the first context read right after
it, a second (cached) context read, a profile read and a gist search. Latencies per operation
are compared with the first size's (`<= 1.5x` is the target from 100 to 10,000 users).

Writes a Markdown report to `bench/results/growth-<date>.md` (git-ignored) and prints it.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime as dt
import functools
import pathlib
import platform
import random
import shutil
import sys
import tempfile
import time
import urllib.parse
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import httpx
from pymongo import MongoClient

from bench.chats import user_chats
from bench.reads import RESULTS_DIR, start_stack
from memobase_server.domain.events import Event, EventGist
from memobase_server.domain.models import ROOT_PROJECT_ID, User
from memobase_server.domain.profiles import ProfileSlot, UserProfile
from memobase_server.storage.mongo.database import EVENT_GISTS, EVENTS, SCHEMA, MongoDatabase
from memobase_server.storage.mongo.events import event_document, gist_document
from memobase_server.storage.mongo.migrations import LAYOUT, SCHEMA_ID
from memobase_server.storage.mongo.profiles import MongoProfileRepo
from memobase_server.storage.mongo.users import MongoUserRepo
from memobase_server.storage.ports import GistPoint
from memobase_server.storage.qdrant.edge import EdgeGistIndex

GISTS_PER_EVENT = 5
SLOTS_PER_PROFILE = 10
WRITE_BATCH = 2000
OPERATIONS = ("insert", "flush", "first_context", "cached_context", "profile", "search")
TOPICS = ("basic_info", "work", "interest", "life_event", "contact_info")
WORDS = (
    "tea", "hiking", "Lisbon", "sister", "piano", "deadline", "garden", "concert", "train",
    "recipe", "marathon", "novel", "museum", "dentist", "birthday", "project", "bicycle",
)  # fmt: skip


@dataclass(frozen=True)
class Size:
    users: int
    gists: int

    @property
    def label(self) -> str:
        return f"{self.users} users x {self.gists} gists"


@dataclass
class Result:
    size: Size
    seed_s: float
    index_s: float
    latencies: dict[str, list[float]] = field(default_factory=dict)
    errors: dict[str, int] = field(default_factory=dict)
    loop_s: float = 0.0


def parse_sizes(raw: str) -> list[Size]:
    sizes = []
    for part in raw.split(","):
        users, _, gists = part.strip().partition("x")
        sizes.append(Size(int(users), int(gists)))
    return sizes


# ---------------------------------------------------------------- seeding


def _vector(rng: random.Random, dim: int) -> tuple[float, ...]:
    values = [rng.gauss(0.0, 1.0) for _ in range(dim)]
    norm = sum(v * v for v in values) ** 0.5
    return tuple(v / norm for v in values)


def _sentence(rng: random.Random, n: int) -> str:
    return f"On day {n} the user talked about {' and '.join(rng.sample(WORDS, 3))}."


def _history(
    user_id: str, gists: int, rng: random.Random, dim: int
) -> tuple[list[Event], list[EventGist]]:
    now = dt.datetime.now(dt.UTC)
    events: list[Event] = []
    made: list[EventGist] = []
    for e in range(max(1, gists // GISTS_PER_EVENT)):
        at = now - dt.timedelta(days=20, minutes=-e)
        event_id = str(uuid.uuid4())
        lines = [_sentence(rng, e * GISTS_PER_EVENT + g) for g in range(GISTS_PER_EVENT)]
        events.append(
            Event(ROOT_PROJECT_ID, user_id, event_id, "\n".join(lines), (), (), at, at, None)
        )
        made += [
            EventGist(
                ROOT_PROJECT_ID,
                user_id,
                str(uuid.uuid4()),
                event_id,
                line,
                at,
                _vector(rng, dim),
                None,
            )
            for line in lines
        ]
    return events, made


async def seed(
    mongo_url: str, database: str, vectors: pathlib.Path, size: Size, model: str, dim: int
) -> tuple[list[str], float, float]:
    """Writes `size` into MongoDB and the vector index; returns the user ids and the seconds
    spent on each. Users and profiles go through the repositories (a few writes each), events
    and gists in bulk, as the documents a flush writes."""
    rng = random.Random(size.users * 7919 + size.gists)
    client: MongoClient[dict[str, Any]] = MongoClient(mongo_url, tz_aware=True)
    db = client[database]
    mongo = MongoDatabase(mongo_url, database)
    await mongo.ensure_indexes()
    users, profiles = MongoUserRepo(mongo), MongoProfileRepo(mongo)
    index = EdgeGistIndex(vectors, model, dim)
    await index.open()
    user_ids = [str(uuid.uuid4()) for _ in range(size.users)]
    mongo_s = index_s = 0.0
    events: list[dict[str, Any]] = []
    gists: list[dict[str, Any]] = []
    points: list[GistPoint] = []

    async def one_user(user_id: str) -> None:
        now = dt.datetime.now(dt.UTC)
        await users.insert(User(ROOT_PROJECT_ID, user_id, {"seeded": True}, now, now))
        slots = tuple(
            ProfileSlot(
                str(uuid.uuid4()),
                TOPICS[i % len(TOPICS)],
                f"item_{i}",
                _sentence(rng, i),
                now,
                now,
            )
            for i in range(SLOTS_PER_PROFILE)
        )
        await profiles.save(UserProfile(ROOT_PROJECT_ID, user_id, slots), 0)

    async def drain(force: bool) -> None:
        nonlocal mongo_s, index_s
        started = time.perf_counter()
        for name, docs in ((EVENTS, events), (EVENT_GISTS, gists)):
            if docs and (force or len(docs) >= WRITE_BATCH):
                await asyncio.to_thread(db[name].insert_many, list(docs), ordered=False)
                docs.clear()
        mongo_s += time.perf_counter() - started
        if points and (force or len(points) >= WRITE_BATCH):
            started = time.perf_counter()
            await index.upsert(list(points))
            points.clear()
            index_s += time.perf_counter() - started

    for first in range(0, len(user_ids), 50):
        batch = user_ids[first : first + 50]
        started = time.perf_counter()
        await asyncio.gather(*map(one_user, batch))
        mongo_s += time.perf_counter() - started
        for user_id in batch:
            made_events, made_gists = _history(user_id, size.gists, rng, dim)
            events.extend(event_document(e) for e in made_events)
            for gist in made_gists:
                gists.append(gist_document(gist))  # its point goes into the index right here
                points.append(
                    GistPoint(
                        gist.gist_id,
                        ROOT_PROJECT_ID,
                        user_id,
                        gist.event_id,
                        gist.created_at,
                        (),
                        gist.content,
                        gist.vector or (),
                    )
                )
        await drain(force=False)
    await drain(force=True)
    # Seeded in the current layout: the server has nothing to upgrade.
    await mongo.collection(SCHEMA).replace_one(
        {"_id": SCHEMA_ID}, {"_id": SCHEMA_ID, "layout": LAYOUT}, upsert=True
    )
    await index.close()
    await mongo.close()
    client.close()
    return user_ids, mongo_s, index_s


# ---------------------------------------------------------------- the loop


class Loop:
    """One live user's loop over REST, timing each operation."""

    def __init__(self, http: httpx.AsyncClient, result: Result, blobs: int) -> None:
        self._http = http
        self._result = result
        self._blobs = blobs

    async def _timed(self, op: str, send: Callable[[], Awaitable[httpx.Response]]) -> None:
        started = time.perf_counter()
        try:
            reply = await send()
            ok = reply.status_code == 200 and reply.json().get("errno") == 0
        except httpx.HTTPError:
            ok = False
        elapsed = time.perf_counter() - started
        if ok:
            self._result.latencies.setdefault(op, []).append(elapsed)
        else:
            self._result.errors[op] = self._result.errors.get(op, 0) + 1

    async def run(self, index: int, user_id: str) -> None:
        made = user_chats(seed=1, index=index, blobs=self._blobs)
        insert = f"/api/v1/blobs/insert/{user_id}"
        for messages in made.blobs:
            body = {"blob_type": "chat", "blob_data": {"messages": list(messages)}}
            await self._timed("insert", functools.partial(self._http.post, insert, json=body))
        await self._timed(
            "flush",
            lambda: self._http.post(
                f"/api/v1/users/buffer/{user_id}/chat", params={"wait_process": "true"}
            ),
        )
        context = f"/api/v1/users/context/{user_id}?max_token_size=1000"
        await self._timed("first_context", lambda: self._http.get(context))
        await self._timed("cached_context", lambda: self._http.get(context))
        await self._timed(
            "profile",
            lambda: self._http.get(f"/api/v1/users/profile/{user_id}?max_token_size=1000"),
        )
        query = urllib.parse.quote(made.query, safe="")
        await self._timed(
            "search",
            lambda: self._http.get(
                f"/api/v1/users/event_gist/search/{user_id}?query={query}&topk=10"
                "&similarity_threshold=0.2&time_range_in_days=180"
            ),
        )


async def live(
    http_url: str, token: str, user_ids: list[str], args: argparse.Namespace, result: Result
) -> None:
    async with httpx.AsyncClient(
        base_url=http_url,
        headers={"Authorization": f"Bearer {token}"},
        timeout=args.timeout,
        limits=httpx.Limits(max_connections=args.concurrency * 2),
    ) as http:
        loop = Loop(http, result, args.blobs)
        queue = list(enumerate(user_ids))

        async def lane() -> None:
            while queue:
                index, user_id = queue.pop(0)
                await loop.run(index, user_id)

        started = time.perf_counter()
        await asyncio.gather(*(lane() for _ in range(args.concurrency)))
        result.loop_s = time.perf_counter() - started


def measure(size: Size, args: argparse.Namespace) -> Result:
    with (
        contextlib.ExitStack() as stack,
        tempfile.TemporaryDirectory(prefix="memobase-growth-") as tmp,
    ):
        workdir = pathlib.Path(tmp)
        seeded: dict[str, Any] = {}

        def before_server(mongo_url: str, database: str, env: dict[str, str]) -> dict[str, str]:
            vectors = workdir / "vectors"
            started = time.perf_counter()
            user_ids, mongo_s, index_s = asyncio.run(
                seed(
                    mongo_url,
                    database,
                    vectors,
                    size,
                    env["MEMOBASE_EMBEDDING_MODEL"],
                    int(env["MEMOBASE_EMBEDDING_DIM"]),
                )
            )
            seeded.update(user_ids=user_ids, mongo_s=mongo_s, index_s=index_s)
            print(
                f"  seeded {size.label} in {time.perf_counter() - started:.0f} s", file=sys.stderr
            )
            return {"MEMOBASE_VECTOR_STORE_PATH": str(vectors)}

        running = start_stack(
            workdir,
            stack,
            before_server=before_server,
            start_timeout=600,
            log_level=args.log_level,
        )
        result = Result(size, seeded["mongo_s"], seeded["index_s"])
        asyncio.run(
            live(running.http_url, running.token, seeded["user_ids"][: args.live], args, result)
        )
        if args.keep_logs:  # before the work dir goes
            args.keep_logs.mkdir(parents=True, exist_ok=True)
            name = f"server-{size.users}x{size.gists}.log"
            shutil.copy(running.server_log, args.keep_logs / name)
        return result


# ---------------------------------------------------------------- report


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000


def report(results: list[Result], args: argparse.Namespace) -> str:
    base = results[0]
    lines = [
        f"# Growth benchmark, {dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M} UTC",
        "",
        f"{platform.node()}, {platform.processor() or platform.machine()}; {args.live} live users "
        f"x {args.blobs} chat blobs, concurrency {args.concurrency}, scripted model at 0 ms. "
        f"Ratios: p95 against {base.size.label}.",
        "",
        "| size | seed MongoDB s | seed index s | loop s | errors |",
        "|---|---:|---:|---:|---|",
    ]
    for r in results:
        errors = ", ".join(f"{op} {n}" for op, n in r.errors.items()) or "none"
        lines.append(
            f"| {r.size.label} | {r.seed_s:.0f} | {r.index_s:.0f} | {r.loop_s:.1f} | {errors} |"
        )
    lines += [
        "",
        "| operation | size | n | p50 ms | p95 ms | p99 ms | p95 ratio |",
        "|---|---|---:|---:|---:|---:|---:|",
    ]
    for op in OPERATIONS:
        for r in results:
            got = r.latencies.get(op, [])
            if not got:
                lines.append(f"| {op} | {r.size.label} | 0 | - | - | - | - |")
                continue
            ref = base.latencies.get(op, [])
            ratio = f"{_pct(got, 0.95) / _pct(ref, 0.95):.2f}x" if ref else "-"
            lines.append(
                f"| {op} | {r.size.label} | {len(got)} | {_pct(got, 0.5):.1f} | "
                f"{_pct(got, 0.95):.1f} | {_pct(got, 0.99):.1f} | {ratio} |"
            )
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--sizes",
        default="100x50,10000x50,50x1000",
        help="users x gists, comma-separated; the first is the baseline",
    )
    parser.add_argument(
        "--live", type=int, default=50, help="seeded users that live through the loop"
    )
    parser.add_argument("--blobs", type=int, default=5, help="chat blobs each live user inserts")
    parser.add_argument("--concurrency", type=int, default=16, help="live users at a time")
    parser.add_argument("--timeout", type=float, default=60.0, help="per-request timeout (s)")
    parser.add_argument("--out", type=pathlib.Path, help="report file (default bench/results/)")
    parser.add_argument("--log-level", default="WARNING", help="the server's log level")
    parser.add_argument("--keep-logs", type=pathlib.Path, help="copy each server log into this dir")
    args = parser.parse_args(argv)
    results = []
    for size in parse_sizes(args.sizes):
        print(f"growth: {size.label}", file=sys.stderr)
        results.append(measure(size, args))
    text = report(results, args)
    print(text)
    out = args.out or RESULTS_DIR / f"growth-{dt.datetime.now(dt.UTC):%Y%m%d-%H%M}.md"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(text)
    return 1 if any(r.errors for r in results) else 0


if __name__ == "__main__":
    sys.exit(main())
