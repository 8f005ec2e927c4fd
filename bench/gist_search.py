"""Gist search latency and upsert throughput of each GistIndex adapter, in process.

For each adapter and size: random unit vectors of dimension 384 spread over 100 users of one
project are upserted in batches of 1,000 (throughput), then searches filtered by one random
user (limit 10, no threshold) are timed from the caller's side of `await`, thread hop included.
A ticker on the event loop records the longest stall of the loop during the upserts and during
the searches: how long the index keeps every other request of the process waiting.

Adapters: `edge` (qdrant-edge-py in a temporary directory) and `qdrant-local` (qdrant-client's
local mode in memory, its calls on a private loop thread). Each case has a time budget for its
searches, so local mode's brute force at 100k points stays bounded.

    python -m bench.gist_search [--sizes 10000,100000] [--adapters edge,qdrant-local]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import math
import statistics
import tempfile
import time
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import numpy.typing as npt

from memobase_server.storage.ports import GistIndex, GistPoint
from memobase_server.storage.qdrant.client import connect_qdrant_gist_index
from memobase_server.storage.qdrant.edge import EdgeGistIndex

DIM = 384
USERS = 100
PROJECT = "bench"
MODEL = "bench-random-384"
UPSERT_BATCH = 1000
ADAPTERS = ("edge", "qdrant-local")


@dataclass(frozen=True)
class Result:
    adapter: str
    points: int
    upsert_per_s: float
    upsert_stall_ms: float
    queries: int
    p50_ms: float
    p99_ms: float
    max_stall_ms: float
    mean_hits: float


def unit_vectors(rng: np.random.Generator, count: int) -> npt.NDArray[np.float32]:
    vectors = rng.standard_normal((count, DIM), dtype=np.float32)
    norms: npt.NDArray[np.float32] = np.linalg.norm(vectors, axis=1, keepdims=True)
    normalised: npt.NDArray[np.float32] = vectors / norms
    return normalised


class StallMeter:
    """A ticker on the event loop that records the longest time the loop could not run it,
    counting only gaps that began after `window_from` (the bench's own work is left out)."""

    def __init__(self) -> None:
        self.longest = 0.0
        self.window_from = 0.0
        self._stop = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    async def _tick(self) -> None:
        last = time.perf_counter()
        while not self._stop.is_set():
            await asyncio.sleep(0.001)
            now = time.perf_counter()
            if last >= self.window_from:
                self.longest = max(self.longest, now - last - 0.001)
            last = now

    async def window(self) -> None:
        """Lets the ticker run once, then counts gaps from now on."""
        await asyncio.sleep(0.002)
        self.window_from = time.perf_counter()

    async def pause(self) -> None:
        """Lets the ticker see the last gap of a window, then stops counting."""
        await asyncio.sleep(0.002)
        self.window_from = math.inf

    async def __aenter__(self) -> StallMeter:
        self._task = asyncio.create_task(self._tick())
        await asyncio.sleep(0)
        return self

    async def __aexit__(self, *exc: object) -> None:
        self._stop.set()
        if self._task is not None:
            await self._task


@contextlib.asynccontextmanager
async def opened(adapter: str, workdir: Path) -> AsyncIterator[GistIndex]:
    index: GistIndex
    if adapter == "edge":
        index = EdgeGistIndex(workdir / "edge", MODEL, DIM)
    else:
        index = connect_qdrant_gist_index(MODEL, DIM, path=":memory:")
    await index.open()
    try:
        yield index
    finally:
        await index.close()


async def fill(index: GistIndex, rng: np.random.Generator, points: int) -> tuple[float, float]:
    """Upserts `points` gists; returns points per second and the longest loop stall (s)."""
    start_time = datetime(2026, 1, 1, tzinfo=UTC)
    elapsed = 0.0
    async with StallMeter() as meter:
        for start in range(0, points, UPSERT_BATCH):
            count = min(UPSERT_BATCH, points - start)
            vectors = unit_vectors(rng, count).tolist()
            batch = [
                GistPoint(
                    gist_id=f"gist-{start + i}",
                    project_id=PROJECT,
                    user_id=f"user-{(start + i) % USERS}",
                    event_id=f"event-{(start + i) // 3}",
                    created_at=start_time + timedelta(seconds=start + i),
                    tags=("bench",),
                    content=f"gist number {start + i}",
                    vector=vectors[i],
                )
                for i in range(count)
            ]
            await meter.window()
            began = time.perf_counter()
            await index.upsert(batch)
            elapsed += time.perf_counter() - began
            await meter.pause()
    return points / elapsed, meter.longest


async def searches(
    index: GistIndex, rng: np.random.Generator, max_queries: int, budget_s: float
) -> tuple[list[float], float, float]:
    """Returns the latencies (s), the longest loop stall (s) and the mean number of hits."""
    queries = unit_vectors(rng, max_queries).tolist()
    users = rng.integers(0, USERS, size=max_queries)
    # One warm-up query, outside the measurement.
    await index.search(PROJECT, "user-0", queries[0], limit=10, min_similarity=-1.0, since=None)
    latencies: list[float] = []
    hits = 0
    deadline = time.perf_counter() + budget_s
    async with StallMeter() as meter:
        for query, user in zip(queries, users, strict=True):
            began = time.perf_counter()
            found = await index.search(
                PROJECT, f"user-{user}", query, limit=10, min_similarity=-1.0, since=None
            )
            latencies.append(time.perf_counter() - began)
            hits += len(found)
            if time.perf_counter() > deadline:
                break
    return latencies, meter.longest, hits / len(latencies)


def percentile(values: Sequence[float], q: float) -> float:
    if len(values) == 1:
        return values[0]
    return statistics.quantiles(values, n=100, method="inclusive")[int(q) - 1]


async def run_case(adapter: str, points: int, max_queries: int, budget_s: float) -> Result:
    rng = np.random.default_rng(points)
    with tempfile.TemporaryDirectory(prefix="gist-bench-") as tmp:
        async with opened(adapter, Path(tmp)) as index:
            rate, upsert_stall = await fill(index, rng, points)
            assert await index.count(PROJECT) == points
            latencies, stall, mean_hits = await searches(index, rng, max_queries, budget_s)
    return Result(
        adapter=adapter,
        points=points,
        upsert_per_s=rate,
        upsert_stall_ms=upsert_stall * 1000,
        queries=len(latencies),
        p50_ms=percentile(latencies, 50) * 1000,
        p99_ms=percentile(latencies, 99) * 1000,
        max_stall_ms=stall * 1000,
        mean_hits=mean_hits,
    )


def table(results: Sequence[Result]) -> str:
    lines = [
        "| adapter | points | upsert (points/s) | loop stall in upserts (ms) | searches "
        "| search p50 (ms) | search p99 (ms) | loop stall in searches (ms) | hits/search |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    lines += [
        f"| {r.adapter} | {r.points:,} | {r.upsert_per_s:,.0f} | {r.upsert_stall_ms:.1f} "
        f"| {r.queries} | {r.p50_ms:.2f} | {r.p99_ms:.2f} | {r.max_stall_ms:.1f} "
        f"| {r.mean_hits:.1f} |"
        for r in results
    ]
    return "\n".join(lines)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="10000,100000", help="comma-separated point counts")
    parser.add_argument("--adapters", default=",".join(ADAPTERS), help="edge,qdrant-local")
    parser.add_argument("--queries", type=int, default=500, help="most searches per case")
    parser.add_argument("--budget", type=float, default=12.0, help="seconds of search per case")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    sizes = [int(s) for s in args.sizes.split(",") if s]
    adapters = [a for a in args.adapters.split(",") if a]
    unknown = set(adapters) - set(ADAPTERS)
    if unknown:
        raise SystemExit(f"unknown adapters: {', '.join(sorted(unknown))}")
    results: list[Result] = []
    began = time.perf_counter()
    for adapter in adapters:
        for size in sizes:
            result = asyncio.run(run_case(adapter, size, args.queries, args.budget))
            print(
                f"{adapter} {size:,}: {result.queries} searches, p50 {result.p50_ms:.2f} ms",
                flush=True,
            )
            results.append(result)
    print()
    print(f"dimension {DIM}, {USERS} users, limit 10, filtered by one user; ")
    print(f"total {time.perf_counter() - began:.0f} s\n")
    print(table(results))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
