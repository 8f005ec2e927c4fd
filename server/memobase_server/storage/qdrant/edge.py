"""GistIndex on Qdrant's own engine, in process (`qdrant-edge-py`): the single-node default.

One shard per vector space (embedding model and dimension) in a directory under `path`, named
like the server collections (`event_gists__<model-slug>__<dim>`). Cosine distance; keyword
payload indexes on project_id, user_id and event_id, a float index on created_at_ts. A filtered
search for one user walks that user's points through the payload index: about a millisecond at
100k points (bench/gist_search.py).

One process at a time: `open()` takes an exclusive `flock` on `<shard>.lock` beside the shard
directory and fails with IndexLockedError when another process (or another index object in this
process) holds it; the engine's write-ahead log is locked as well. Run the index inside the one
process that owns the directory (the indexer), and use a Qdrant server when several processes
must search.

Every engine call is blocking, so each runs on the index's single worker thread, serialised.
The engine does not release the GIL while it works, so the event loop still pauses for the
length of one engine call: a search is about a millisecond, and upserts are cut into chunks of
128 points (a few milliseconds each) for that reason.

Updates go to the engine's write-ahead log and are flushed to segments on close; the index is
derived data (MongoDB holds every gist), so after a crash the log replays and a reconcile pass
fills any gap.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import functools
import os
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from pathlib import Path
from typing import TypeVar

import qdrant_edge as qe

from memobase_server.storage.ports import GistHit, GistPoint
from memobase_server.storage.qdrant.common import (
    CREATED_AT_TS,
    EVENT_ID,
    HIT_FIELDS,
    PROJECT_ID,
    USER_ID,
    IndexLockedError,
    checked_vector,
    collection_name,
    epoch_seconds,
    hit_of,
    payload_of,
    point_id,
)

T = TypeVar("T")

_CONFIG_FILE = "edge_config.json"
# The engine holds the GIL for a whole call (measured: 135 ms for 5,000 points of 384
# dimensions), so the event loop waits that long even though the call runs on another thread.
# Small chunks let it in between: about 3 ms each.
_UPSERT_CHUNK = 128


class EdgeGistIndex:
    """The gist index of one vector space, stored under `path` by the in-process engine."""

    def __init__(self, path: Path, model_name: str, dim: int, *, search_threads: int = 1) -> None:
        self._root = Path(path)
        self._dim = dim
        self._collection = collection_name(model_name, dim)
        self._dir = self._root / self._collection
        self._lock_path = self._root / f"{self._collection}.lock"
        self._search_threads = search_threads
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="qdrant-edge")
        self._shard: qe.EdgeShard | None = None
        self._lock_fd: int | None = None
        self._closed = False

    @property
    def collection(self) -> str:
        return self._collection

    @property
    def directory(self) -> Path:
        return self._dir

    async def _run(self, fn: Callable[..., T], *args: object) -> T:
        if self._closed:
            raise RuntimeError("the gist index is closed")
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, functools.partial(fn, *args))

    def _require_shard(self) -> qe.EdgeShard:
        if self._shard is None:
            raise RuntimeError("the gist index is not open: call open() first")
        return self._shard

    # -- open / close --------------------------------------------------------------------------

    async def open(self) -> None:
        await self._run(self._open_sync)

    def _open_sync(self) -> None:
        if self._shard is not None:
            return
        self._root.mkdir(parents=True, exist_ok=True)
        self._lock()
        try:
            config = qe.EdgeConfig(
                vectors=qe.EdgeVectorParams(size=self._dim, distance=qe.Distance.Cosine),
                max_search_threads=self._search_threads,
                # No HNSW graph: a search is filtered to one user, whose points the payload
                # index yields for exact scoring. Building one took 63 s at 100k points and
                # made those searches no faster; without it optimize() only merges segments
                # and drops deleted points (0.2 s at 20k).
                optimizers=qe.EdgeOptimizersConfig(indexing_threshold=0),
            )
            if (self._dir / _CONFIG_FILE).exists():
                shard = qe.EdgeShard.load(str(self._dir), config)
            else:
                shard = qe.EdgeShard.create(str(self._dir), config)
            indexed = shard.info().payload_schema
            for field, schema in (
                (PROJECT_ID, qe.PayloadSchemaType.Keyword),
                (USER_ID, qe.PayloadSchemaType.Keyword),
                (EVENT_ID, qe.PayloadSchemaType.Keyword),
                (CREATED_AT_TS, qe.PayloadSchemaType.Float),
            ):
                if field not in indexed:
                    shard.update(qe.UpdateOperation.create_field_index(field, schema))
        except BaseException:
            self._unlock()
            raise
        self._shard = shard

    def _lock(self) -> None:
        fd = os.open(self._lock_path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise IndexLockedError(
                f"the gist index {self._dir} is in use by another process; the embedded index "
                "serves one process, use a Qdrant server to share it"
            ) from None
        self._lock_fd = fd

    def _unlock(self) -> None:
        if self._lock_fd is not None:
            fcntl.flock(self._lock_fd, fcntl.LOCK_UN)
            os.close(self._lock_fd)
            self._lock_fd = None

    async def close(self) -> None:
        if self._closed:
            return
        try:
            await self._run(self._close_sync)
        finally:
            self._closed = True
            self._executor.shutdown(wait=False)

    def _close_sync(self) -> None:
        shard, self._shard = self._shard, None
        try:
            if shard is not None:
                try:
                    shard.flush()
                finally:
                    shard.close()
        finally:
            self._unlock()

    # -- writes --------------------------------------------------------------------------------

    async def upsert(self, points: Sequence[GistPoint]) -> None:
        if points:
            await self._run(self._upsert_sync, list(points))

    def _upsert_sync(self, points: list[GistPoint]) -> None:
        shard = self._require_shard()
        # Every point is checked before the first is written.
        prepared = [
            qe.Point(point_id(p.gist_id), checked_vector(p.vector, self._dim), payload_of(p))
            for p in points
        ]
        for start in range(0, len(prepared), _UPSERT_CHUNK):
            chunk = prepared[start : start + _UPSERT_CHUNK]
            shard.update(qe.UpdateOperation.upsert_points(chunk))

    async def delete_event(self, project_id: str, user_id: str, event_id: str) -> None:
        await self._run(self._delete_sync, _filter(project_id, user_id, event_id=event_id))

    async def delete_user(self, project_id: str, user_id: str) -> None:
        await self._run(self._delete_sync, _filter(project_id, user_id))

    def _delete_sync(self, where: qe.Filter) -> None:
        self._require_shard().update(qe.UpdateOperation.delete_points_by_filter(where))

    # -- reads ---------------------------------------------------------------------------------

    async def search(
        self,
        project_id: str,
        user_id: str,
        vector: Sequence[float],
        *,
        limit: int,
        min_similarity: float,
        since: datetime | None,
    ) -> list[GistHit]:
        if limit <= 0:
            return []
        request = qe.QueryRequest(
            limit=limit,
            query=qe.Query.Nearest(checked_vector(vector, self._dim)),
            filter=_filter(project_id, user_id, since=since),
            with_payload=qe.PayloadSelector.Include(HIT_FIELDS),
            with_vector=False,
            score_threshold=min_similarity,
        )
        scored = await self._run(self._query_sync, request)
        # Qdrant's threshold keeps scores equal to it; the port promises strictly greater.
        return [hit_of(p.payload, p.score) for p in scored if p.score > min_similarity]

    def _query_sync(self, request: qe.QueryRequest) -> list[qe.ScoredPoint]:
        return self._require_shard().query(request)

    async def count(self, project_id: str | None = None) -> int:
        where = None if project_id is None else _filter(project_id)
        return await self._run(self._count_sync, where)

    def _count_sync(self, where: qe.Filter | None) -> int:
        return self._require_shard().count(qe.CountRequest(exact=True, filter=where))

    async def optimize(self) -> bool:
        """Merges segments and drops deleted points. The engine never does it by itself: call
        it now and then (after many deletions); it holds the worker thread while it runs."""
        return await self._run(self._optimize_sync)

    def _optimize_sync(self) -> bool:
        return self._require_shard().optimize()

    def __del__(self) -> None:
        # Best effort for an index never closed: release the lock with the process's fd.
        with contextlib.suppress(Exception):
            self._unlock()


def _filter(
    project_id: str,
    user_id: str | None = None,
    *,
    event_id: str | None = None,
    since: datetime | None = None,
) -> qe.Filter:
    must: list[qe.ConditionType] = [qe.FieldCondition(PROJECT_ID, match=qe.MatchValue(project_id))]
    if user_id is not None:
        must.append(qe.FieldCondition(USER_ID, match=qe.MatchValue(user_id)))
    if event_id is not None:
        must.append(qe.FieldCondition(EVENT_ID, match=qe.MatchValue(event_id)))
    if since is not None:
        must.append(qe.FieldCondition(CREATED_AT_TS, range=qe.RangeFloat(gt=epoch_seconds(since))))
    return qe.Filter(must=must)
