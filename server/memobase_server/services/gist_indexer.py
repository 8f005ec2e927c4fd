"""Feeds the vector index from MongoDB. Whoever makes gists stores them (with their embeddings,
when they could be made) in MongoDB, then their event marked due for the index, and queues the
event's key in Redis; this one indexer, in the process that owns the index, reads the queued
events' gists, embeds what lacks a vector of the current model, upserts into the index and
clears the event's mark. A flush that runs in this process hands its gists over directly
(`offer`): nothing is read back. A pass over what is still marked due (at start-up, then every
minute; it reads only those, in batches with a pause between them so requests keep their share
of the database) catches whatever a queue lost. So the index can be rebuilt from MongoDB at any
time without a single LLM call, and no scan runs on the hot path."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping, Sequence
from dataclasses import replace

from memobase_server.domain.errors import MemobaseError
from memobase_server.domain.events import EventGist
from memobase_server.llm.ports import Embedder
from memobase_server.storage.mongo.events import MongoEventEditRepo
from memobase_server.storage.ports import GistIndex, GistPoint
from memobase_server.storage.redis.gist_queue import RedisGistQueue

log = logging.getLogger(__name__)

BATCH = 256
WAIT_SECONDS = 2.0
SWEEP_SECONDS = 60.0
SWEEP_PAUSE_SECONDS = 0.05
OFFERED_MAX = 10_000
"""Events handed over in process and not indexed yet; past this, offers are refused (the
caller queues them in Redis instead)."""


class GistIndexer:
    def __init__(
        self,
        repo: MongoEventEditRepo,
        index: GistIndex,
        embedder: Embedder,
        queue: RedisGistQueue,
    ) -> None:
        self._repo = repo
        self._index = index
        self._embedder = embedder
        self._queue = queue
        self._offered: asyncio.Queue[tuple[str, list[EventGist]]] = asyncio.Queue(OFFERED_MAX)
        self._running = False

    def offer(self, event_key: str, gists: Sequence[EventGist]) -> bool:
        """Takes a just-stored event's gists (with their vectors) for indexing, unless this
        indexer is not running or is behind; False means: queue the event in Redis."""
        if not self._running:
            return False
        try:
            self._offered.put_nowait((event_key, list(gists)))
        except asyncio.QueueFull:
            return False
        return True

    async def run(self) -> None:
        self._running = True
        try:
            await asyncio.gather(self._run_queued(), self._run_offered())
        finally:
            self._running = False

    async def _run_queued(self) -> None:
        last_sweep = -SWEEP_SECONDS
        loop = asyncio.get_running_loop()
        while True:
            try:
                if loop.time() - last_sweep >= SWEEP_SECONDS:
                    await self._sweep()
                    last_sweep = loop.time()
                keys = await self._queue.pop(BATCH, WAIT_SECONDS)
                if keys:
                    await self.index_events(await self._repo.gists_of_events(keys))
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("gist indexer: %r; retrying", exc)
                await asyncio.sleep(1.0)

    async def _run_offered(self) -> None:
        while True:
            batch = [await self._offered.get()]
            while len(batch) < BATCH and not self._offered.empty():
                batch.append(self._offered.get_nowait())
            try:
                await self.index_events(dict(batch))
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # still due in MongoDB: the next sweep indexes them
                log.warning("gist indexer: %r; left to the sweep", exc)

    async def _sweep(self) -> None:
        while True:
            if not await self.index_pending():
                return
            await asyncio.sleep(SWEEP_PAUSE_SECONDS)

    async def index_pending(self) -> int:
        """Indexes one batch of what MongoDB says is due; returns how many events (or gists
        marked one by one, by layout 2) are no longer due."""
        events = await self._repo.due_events(BATCH)
        if events:
            return await self.index_events(await self._repo.gists_of_events(events))
        ready = await self._index_gists(await self._repo.unindexed(BATCH))
        await self._repo.mark_indexed(ready)
        return len(ready)

    async def index_events(self, events: Mapping[str, Sequence[EventGist]]) -> int:
        """Embeds (where needed) and upserts the events' gists, then clears the mark of each
        event whose gists are all indexed; returns how many events that is."""
        if not events:
            return 0
        ready = await self._index_gists([g for gists in events.values() for g in gists])
        ready_ids = {g.gist_id for g in ready}
        done = [key for key, gists in events.items() if all(g.gist_id in ready_ids for g in gists)]
        await self._repo.mark_events_indexed(done)
        return len(done)

    async def _index_gists(self, gists: list[EventGist]) -> list[EventGist]:
        """Embeds (where needed) and upserts; returns the gists now in the index."""
        if not gists:
            return []
        gists = await self._with_vectors(gists)
        ready = [g for g in gists if g.vector is not None]
        if ready:
            await self._index.upsert(
                [
                    GistPoint(
                        gist_id=g.gist_id,
                        project_id=g.project_id,
                        user_id=g.user_id,
                        event_id=g.event_id,
                        created_at=g.created_at,
                        tags=(),
                        content=g.content,
                        vector=g.vector or (),
                    )
                    for g in ready
                ]
            )
        return ready

    async def _with_vectors(self, gists: list[EventGist]) -> list[EventGist]:
        model = self._embedder.model_name
        missing = [g for g in gists if g.vector is None or g.embedding_model != model]
        if not missing:
            return gists
        try:
            vectors = await self._embedder.embed([g.content for g in missing], "document")
        except MemobaseError as exc:
            log.warning("gist embedding failed, will retry: %s", exc)
            return [g for g in gists if g not in missing]
        embedded = {
            g.gist_id: replace(g, vector=tuple(v), embedding_model=model)
            for g, v in zip(missing, vectors, strict=True)
        }
        await self._repo.set_vectors(list(embedded.values()))
        return [embedded.get(g.gist_id, g) for g in gists]


class IndexEraser:
    """Removes a deleted user's points from the vector index."""

    def __init__(self, index: GistIndex) -> None:
        self._index = index

    async def purge(self, project_id: str, user_id: str) -> None:
        await self._index.delete_user(project_id, user_id)
