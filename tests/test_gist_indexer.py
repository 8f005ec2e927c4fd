"""The gist indexer on the default stack (FerretDB, redis-server, the embedded vector engine, the
scripted model's embeddings): an event stays due for the index until every one of its gists is
in it, whichever way it arrives (handed over in process, queued in Redis, or found by the
sweep), and one without vectors gets them made."""

from __future__ import annotations

import asyncio
import pathlib
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, replace

import pytest
import redis.asyncio as aioredis

from memobase_server.domain.events import Event, EventGist
from memobase_server.domain.models import utcnow
from memobase_server.llm.embedders.openai_compat import OpenAIEmbedder
from memobase_server.services.gist_indexer import GistIndexer
from memobase_server.storage.mongo.database import DUE, EVENTS, MongoDatabase
from memobase_server.storage.mongo.events import MongoEventEditRepo, MongoEventRepo, event_key
from memobase_server.storage.qdrant.edge import EdgeGistIndex
from memobase_server.storage.redis.gist_queue import RedisGistQueue
from tests.conftest import ScriptedLLM, eventually

PROJECT = "p"
DIM = 256


@dataclass
class Parts:
    db: MongoDatabase
    events: MongoEventRepo
    index: EdgeGistIndex
    embedder: OpenAIEmbedder
    queue: RedisGistQueue
    indexer: GistIndexer


@pytest.fixture
async def parts(
    mongo_db: MongoDatabase, redis_url: str, scripted_llm: ScriptedLLM, tmp_path: pathlib.Path
) -> AsyncIterator[Parts]:
    db = mongo_db
    await db.ensure_indexes()
    embedder = OpenAIEmbedder(
        model="text-embedding-3-small",
        dim=DIM,
        base_url=f"{scripted_llm.base_url}/v1",
        api_key="scripted",
        send_dimensions=True,
    )
    index = EdgeGistIndex(tmp_path / "vectors", embedder.model_name, DIM)
    await index.open()
    redis = aioredis.Redis.from_url(redis_url, decode_responses=True)
    queue = RedisGistQueue(redis, f"indexer-{uuid.uuid4().hex[:8]}")
    indexer = GistIndexer(MongoEventEditRepo(db), index, embedder, queue)
    yield Parts(db, MongoEventRepo(db), index, embedder, queue, indexer)
    await index.close()
    await embedder.close()
    await redis.aclose()


async def _store_event(
    parts: Parts, user_id: str, lines: list[str], *, vectors: bool
) -> tuple[Event, list[EventGist]]:
    now = utcnow()
    event = Event(PROJECT, user_id, str(uuid.uuid4()), "\n".join(lines), (), (), now, now)
    gists = [
        EventGist(PROJECT, user_id, str(uuid.uuid4()), event.event_id, line, now) for line in lines
    ]
    if vectors:
        made = await parts.embedder.embed(lines, "document")
        gists = [
            replace(g, vector=tuple(v), embedding_model=parts.embedder.model_name)
            for g, v in zip(gists, made, strict=True)
        ]
    await parts.events.insert_event(event, gists)
    return event, gists


async def _due(parts: Parts, event: Event) -> bool:
    doc = await parts.db.collection(EVENTS).find_one(
        {"_id": event_key(PROJECT, event.user_id, event.event_id)}
    )
    assert doc is not None
    return DUE in doc


async def _found(parts: Parts, user_id: str, text: str) -> list[str]:
    [vector] = await parts.embedder.embed([text], "query")
    hits = await parts.index.search(
        PROJECT, user_id, vector, limit=10, min_similarity=-1.0, since=None
    )
    return [hit.content for hit in hits]


async def test_a_stored_event_is_due_until_the_sweep_indexes_all_its_gists(parts: Parts) -> None:
    user = str(uuid.uuid4())
    lines = ["I adopted a cat named Miso", "I run every Sunday morning"]
    event, _ = await _store_event(parts, user, lines, vectors=True)
    gist_docs = await parts.db.collection("event_gists").find({"user_id": user}).to_list()
    assert len(gist_docs) == 2 and all(DUE not in g for g in gist_docs)  # one mark, on the event
    assert await _due(parts, event)
    assert await _found(parts, user, lines[0]) == []

    assert await parts.indexer.index_pending() == 1
    assert not await _due(parts, event)
    assert set(await _found(parts, user, lines[0])) == set(lines)
    assert await parts.indexer.index_pending() == 0  # nothing left: the sweep stops


async def test_gists_stored_without_vectors_get_them_before_the_mark_goes(
    parts: Parts, llm: ScriptedLLM
) -> None:
    user = str(uuid.uuid4())
    event, _ = await _store_event(parts, user, ["I play the cello"], vectors=False)

    llm.faults(mode="http_500", count=-1, endpoint="embeddings")
    assert await parts.indexer.index_pending() == 0  # no vectors can be made: stays due
    assert await _due(parts, event)

    llm.reset()
    assert await parts.indexer.index_pending() == 1
    assert not await _due(parts, event)
    assert await _found(parts, user, "cello") == ["I play the cello"]
    vectors = await parts.db.collection("gist_vectors").find({"user_id": user}).to_list()
    assert len(vectors) == 1  # made once, kept for a rebuild


async def test_queued_and_handed_over_events_are_indexed_by_the_running_indexer(
    parts: Parts,
) -> None:
    user = str(uuid.uuid4())
    assert not parts.indexer.offer("k", [])  # not running: the caller must queue instead
    running = asyncio.create_task(parts.indexer.run())
    try:
        await asyncio.sleep(0.5)  # its first sweep (every minute) finds nothing due
        queued, _ = await _store_event(parts, user, ["I visited Lisbon in May"], vectors=True)
        await parts.queue.push([event_key(PROJECT, user, queued.event_id)])
        await eventually(lambda: _not_due(parts, queued))

        handed, gists = await _store_event(parts, user, ["My sister is Ines"], vectors=True)
        assert parts.indexer.offer(event_key(PROJECT, user, handed.event_id), gists)
        await eventually(lambda: _not_due(parts, handed))
    finally:
        running.cancel()
        await asyncio.gather(running, return_exceptions=True)
    assert set(await _found(parts, user, "Lisbon")) == {
        "I visited Lisbon in May",
        "My sister is Ines",
    }


async def _not_due(parts: Parts, event: Event) -> bool:
    return not await _due(parts, event)
