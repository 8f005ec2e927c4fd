"""Feeds the vector index from MongoDB. Whoever makes a gist stores it (with its embedding, when
it could be made) in MongoDB and queues its key in Redis; this one indexer, in the process that
owns the index, reads the queued gists by key, embeds what lacks a vector of the current model
and upserts into the index. A pass over the gists still marked due for the index (at start-up,
then every minute; it reads only those, in batches with a pause between them so requests keep
their share of the database) catches whatever the queue lost. So the index can be rebuilt from
MongoDB at any time without a single LLM call, and no scan runs on the hot path."""

from __future__ import annotations

import asyncio
import logging
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

    async def run(self) -> None:
        last_sweep = -SWEEP_SECONDS
        loop = asyncio.get_running_loop()
        while True:
            try:
                if loop.time() - last_sweep >= SWEEP_SECONDS:
                    await self._sweep()
                    last_sweep = loop.time()
                keys = await self._queue.pop(BATCH, WAIT_SECONDS)
                await self.index(await self._repo.get_gists(keys))
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("gist indexer: %r; retrying", exc)
                await asyncio.sleep(1.0)

    async def _sweep(self) -> None:
        while True:
            if not await self.index_pending():
                return
            await asyncio.sleep(SWEEP_PAUSE_SECONDS)

    async def index_pending(self) -> int:
        """Indexes one batch of unindexed gists found in MongoDB; returns how many."""
        return await self.index(await self._repo.unindexed(BATCH))

    async def index(self, gists: list[EventGist]) -> int:
        """Embeds (where needed) and upserts the gists; returns how many were indexed."""
        if not gists:
            return 0
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
            await self._repo.mark_indexed(ready)
        return len(ready)

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
