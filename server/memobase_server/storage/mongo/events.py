"""EventRepo and GistRepo on MongoDB. Ids derive from the flush that made them, so writing an
event or a gist twice is a no-op. Embeddings live apart from the gists' text, in
`gist_vectors`: one document per event holding its gists' vectors by gist id (one write per
flush, not one per gist), or, as layout 2 and the indexer's re-embeddings write them, one per
gist under the gist's `_id`. Reads of a timeline never carry vectors; only the indexer loads
them. An event whose gists are not all in the vector index yet carries `due`
(written after its gists): the indexer clears it with one keyed update per event, where a
mark on every gist would cost a write per gist. Gists stored by layout 2 carry their own
`due` until indexed."""

from __future__ import annotations

import asyncio
import contextlib
from array import array
from collections.abc import Sequence
from dataclasses import replace

from pymongo import ASCENDING
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.errors import BulkWriteError, DuplicateKeyError

from memobase_server.domain.events import DeltaEntry, Event, EventGist
from memobase_server.storage.mongo.database import (
    DUE,
    DUE_INDEX,
    DUPLICATE_KEY,
    EVENT_GISTS,
    EVENTS,
    GIST_VECTORS,
    Document,
    MongoDatabase,
)


def event_key(project_id: str, user_id: str, event_id: str) -> str:
    return f"{project_id}:{user_id}:{event_id}"


def event_document(event: Event, *, due_for_index: bool = False) -> Document:
    doc = event_fields(event)
    if due_for_index:
        doc[DUE] = DUE_INDEX
    return doc


def event_fields(event: Event) -> Document:
    return {
        "_id": event_key(event.project_id, event.user_id, event.event_id),
        "project_id": event.project_id,
        "user_id": event.user_id,
        "event_id": event.event_id,
        "event_tip": event.event_tip,
        "event_tags": [{"tag": t, "value": v} for t, v in event.event_tags],
        "profile_delta": [
            {"content": d.content, "topic": d.topic, "sub_topic": d.sub_topic}
            for d in event.profile_delta
        ],
        "flush_id": event.flush_id,
        "created_at": event.created_at,
        "updated_at": event.updated_at,
    }


def to_event(doc: Document) -> Event:
    return Event(
        project_id=doc["project_id"],
        user_id=doc["user_id"],
        event_id=doc["event_id"],
        event_tip=doc.get("event_tip"),
        event_tags=tuple((t["tag"], t["value"]) for t in doc.get("event_tags", [])),
        profile_delta=tuple(
            DeltaEntry(d["content"], d["topic"], d["sub_topic"])
            for d in doc.get("profile_delta", [])
        ),
        created_at=doc["created_at"],
        updated_at=doc["updated_at"],
        flush_id=doc.get("flush_id"),
    )


def gist_key(gist: EventGist) -> str:
    return event_key(gist.project_id, gist.user_id, gist.gist_id)


def gist_document(gist: EventGist) -> Document:
    return {
        "_id": gist_key(gist),
        "project_id": gist.project_id,
        "user_id": gist.user_id,
        "gist_id": gist.gist_id,
        "event_id": gist.event_id,
        "content": gist.content,
        "created_at": gist.created_at,
    }


def pack_vector(vector: Sequence[float]) -> bytes:
    """A vector as little-endian float32 bytes: a quarter of a list of doubles, and one value
    instead of hundreds for FerretDB to encode."""
    return array("f", vector).tobytes()


def unpack_vector(stored: bytes | list[float]) -> tuple[float, ...]:
    if isinstance(stored, list):  # written by an older version
        return tuple(stored)
    return tuple(array("f", bytes(stored)))


def vector_document(gist: EventGist) -> Document:
    return {
        "_id": gist_key(gist),
        "project_id": gist.project_id,
        "user_id": gist.user_id,
        "event_id": gist.event_id,
        "vector": pack_vector(gist.vector or ()),
        "embedding_model": gist.embedding_model,
    }


def event_vectors_document(event: Event, gists: Sequence[EventGist]) -> Document | None:
    """The vectors of an event's gists, in one document under the event's key."""
    with_vectors = [g for g in gists if g.vector is not None]
    if not with_vectors:
        return None
    return {
        "_id": event_key(event.project_id, event.user_id, event.event_id),
        "project_id": event.project_id,
        "user_id": event.user_id,
        "event_id": event.event_id,
        "vectors": {g.gist_id: pack_vector(g.vector or ()) for g in with_vectors},
        "embedding_model": with_vectors[0].embedding_model,
    }


def _stored_vectors(doc: Document) -> dict[str, tuple[bytes | list[float], str | None]]:
    """Gist id -> (stored vector, model), from either shape of `gist_vectors` document."""
    model = doc.get("embedding_model")
    if "vectors" in doc:
        return {gist_id: (vector, model) for gist_id, vector in doc["vectors"].items()}
    return {doc["_id"].rsplit(":", 1)[-1]: (doc["vector"], model)}


def to_gist(doc: Document) -> EventGist:
    return EventGist(
        project_id=doc["project_id"],
        user_id=doc["user_id"],
        gist_id=doc["gist_id"],
        event_id=doc["event_id"],
        content=doc["content"],
        created_at=doc["created_at"],
    )


async def _insert_ignoring_duplicates(
    collection: AsyncCollection[Document], docs: list[Document]
) -> None:
    if not docs:
        return
    try:
        await collection.insert_many(docs, ordered=False)
    except BulkWriteError as exc:
        others = [e for e in exc.details.get("writeErrors", []) if e["code"] != DUPLICATE_KEY]
        if others:
            raise


class MongoEventRepo:
    def __init__(self, db: MongoDatabase) -> None:
        self._events = db.collection(EVENTS)
        self._gists = db.collection(EVENT_GISTS)
        self._vectors = db.collection(GIST_VECTORS)

    async def insert_event(self, event: Event, gists: Sequence[EventGist]) -> None:
        """Idempotent: an event or gist already stored under its id is left as it is. The
        vectors come first and the event last, due for the index when it has gists: by the
        time the indexer can see the event, everything it needs is stored."""
        vectors = event_vectors_document(event, gists)
        await _insert_ignoring_duplicates(self._vectors, [vectors] if vectors else [])
        await _insert_ignoring_duplicates(self._gists, [gist_document(g) for g in gists])
        with contextlib.suppress(DuplicateKeyError):
            await self._events.insert_one(event_document(event, due_for_index=bool(gists)))

    async def list_events(self, project_id: str, user_id: str) -> list[Event]:
        cursor = self._events.find({"project_id": project_id, "user_id": user_id}).sort(
            [("created_at", ASCENDING), ("_id", ASCENDING)]
        )
        return [to_event(doc) async for doc in cursor]

    async def list_gists(self, project_id: str, user_id: str) -> list[EventGist]:
        cursor = self._gists.find({"project_id": project_id, "user_id": user_id}).sort(
            [("created_at", ASCENDING), ("_id", ASCENDING)]
        )
        return [to_gist(doc) async for doc in cursor]


class MongoEventEditRepo:
    """Reads and edits of single events and their gists (the API side of the timeline), and
    the indexer's reads of gists with their vectors."""

    def __init__(self, db: MongoDatabase) -> None:
        self._events = db.collection(EVENTS)
        self._gists = db.collection(EVENT_GISTS)
        self._vectors = db.collection(GIST_VECTORS)

    async def get(self, project_id: str, user_id: str, event_id: str) -> Event | None:
        doc = await self._events.find_one({"_id": event_key(project_id, user_id, event_id)})
        return to_event(doc) if doc else None

    async def replace(self, event: Event) -> bool:
        """Rewrites the event's fields; whether it is due for the index stays as it was."""
        fields = event_fields(event)
        key = fields.pop("_id")
        result = await self._events.update_one({"_id": key}, {"$set": fields})
        return result.matched_count == 1

    async def delete(self, project_id: str, user_id: str, event_id: str) -> bool:
        result = await self._events.delete_one({"_id": event_key(project_id, user_id, event_id)})
        await self.delete_gists(project_id, user_id, event_id)
        return result.deleted_count == 1

    async def delete_gists(self, project_id: str, user_id: str, event_id: str) -> None:
        selector = {"project_id": project_id, "user_id": user_id, "event_id": event_id}
        await self._gists.delete_many(selector)
        await self._vectors.delete_many(selector)

    async def add_gists(self, event: Event, gists: Sequence[EventGist]) -> None:
        """New gists of a stored event, which becomes due for the index."""
        if gists:
            await self._gists.insert_many([gist_document(g) for g in gists], ordered=False)
        await self._events.update_one(
            {"_id": event_key(event.project_id, event.user_id, event.event_id)},
            {"$set": {DUE: DUE_INDEX}},
        )

    async def _with_vector(self, gist: EventGist) -> EventGist:
        doc = await self._vectors.find_one({"_id": gist_key(gist)})
        if doc is None:
            return gist
        return replace(
            gist, vector=unpack_vector(doc["vector"]), embedding_model=doc.get("embedding_model")
        )

    async def gists_of_events(self, event_keys: Sequence[str]) -> dict[str, list[EventGist]]:
        """The gists (with their vectors) of these events, by event key: two queries per
        user. Events that no longer exist map to no gists."""
        by_user: dict[tuple[str, str], list[str]] = {}
        for key in event_keys:
            project_id, user_id, event_id = key.rsplit(":", 2)  # user and event ids are UUIDs
            by_user.setdefault((project_id, user_id), []).append(event_id)
        found: dict[str, list[EventGist]] = {key: [] for key in event_keys}
        for (project_id, user_id), event_ids in by_user.items():
            selector = {
                "project_id": project_id,
                "user_id": user_id,
                "event_id": {"$in": event_ids},
            }
            gists = [to_gist(doc) async for doc in self._gists.find(selector)]
            vectors: dict[str, tuple[bytes | list[float], str | None]] = {}
            async for doc in self._vectors.find(selector):
                vectors.update(_stored_vectors(doc))
            for gist in gists:
                stored = vectors.get(gist.gist_id)
                key = event_key(project_id, user_id, gist.event_id)
                found.setdefault(key, []).append(
                    replace(gist, vector=unpack_vector(stored[0]), embedding_model=stored[1])
                    if stored is not None
                    else gist
                )
        return found

    async def due_events(self, limit: int) -> list[str]:
        """Keys of up to `limit` events whose gists are not all indexed yet."""
        cursor = self._events.find({DUE: DUE_INDEX}, projection={"_id": 1}).limit(limit)
        return [doc["_id"] async for doc in cursor]

    async def mark_events_indexed(self, event_keys: Sequence[str]) -> None:
        for key in event_keys:
            await self._events.update_one({"_id": key, DUE: DUE_INDEX}, {"$unset": {DUE: ""}})

    async def unindexed(self, limit: int) -> list[EventGist]:
        """Up to `limit` gists marked due by layout 2, with their vectors."""
        cursor = self._gists.find({DUE: DUE_INDEX}).limit(limit)
        gists = [to_gist(doc) async for doc in cursor]
        return list(await asyncio.gather(*(self._with_vector(g) for g in gists)))

    async def set_vectors(self, gists: Sequence[EventGist]) -> None:
        for gist in gists:
            await self._vectors.replace_one(
                {"_id": gist_key(gist)}, vector_document(gist), upsert=True
            )

    async def mark_indexed(self, gists: Sequence[EventGist]) -> None:
        """One update per user: selecting by `due` alone would read every gist still due
        (a whole backlog, after a rebuild) to find these."""
        by_user: dict[tuple[str, str], list[str]] = {}
        for gist in gists:
            by_user.setdefault((gist.project_id, gist.user_id), []).append(gist_key(gist))
        for (project_id, user_id), keys in by_user.items():
            await self._gists.update_many(
                {
                    "project_id": project_id,
                    "user_id": user_id,
                    DUE: DUE_INDEX,
                    "_id": {"$in": keys},
                },
                {"$unset": {DUE: ""}},
            )
