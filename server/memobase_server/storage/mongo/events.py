"""EventRepo and GistRepo on MongoDB. Ids derive from the flush that made them, so writing an
event or a gist twice is a no-op."""

from __future__ import annotations

import contextlib
from collections.abc import Sequence

from pymongo import ASCENDING
from pymongo.errors import BulkWriteError, DuplicateKeyError

from memobase_server.domain.events import DeltaEntry, Event, EventGist
from memobase_server.storage.mongo.database import EVENT_GISTS, EVENTS, Document, MongoDatabase

DUPLICATE_KEY = 11000


def event_key(project_id: str, user_id: str, event_id: str) -> str:
    return f"{project_id}:{user_id}:{event_id}"


def _event_doc(event: Event) -> Document:
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


def _gist_doc(gist: EventGist) -> Document:
    return {
        "_id": event_key(gist.project_id, gist.user_id, gist.gist_id),
        "project_id": gist.project_id,
        "user_id": gist.user_id,
        "gist_id": gist.gist_id,
        "event_id": gist.event_id,
        "content": gist.content,
        "vector": list(gist.vector) if gist.vector is not None else None,
        "embedding_model": gist.embedding_model,
        "indexed": False,
        "created_at": gist.created_at,
    }


def to_gist(doc: Document) -> EventGist:
    vector = doc.get("vector")
    return EventGist(
        project_id=doc["project_id"],
        user_id=doc["user_id"],
        gist_id=doc["gist_id"],
        event_id=doc["event_id"],
        content=doc["content"],
        created_at=doc["created_at"],
        vector=tuple(vector) if vector is not None else None,
        embedding_model=doc.get("embedding_model"),
    )


class MongoEventRepo:
    def __init__(self, db: MongoDatabase) -> None:
        self._events = db.collection(EVENTS)
        self._gists = db.collection(EVENT_GISTS)

    async def insert_event(self, event: Event) -> None:
        """Idempotent: an event already stored under this id is left as it is."""
        with contextlib.suppress(DuplicateKeyError):
            await self._events.insert_one(_event_doc(event))

    async def insert_gists(self, gists: Sequence[EventGist]) -> None:
        """Idempotent per gist id."""
        if not gists:
            return
        try:
            await self._gists.insert_many([_gist_doc(g) for g in gists], ordered=False)
        except BulkWriteError as exc:
            others = [e for e in exc.details.get("writeErrors", []) if e["code"] != DUPLICATE_KEY]
            if others:
                raise

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
    """Reads and edits of single events and their gists (the API side of the timeline)."""

    def __init__(self, db: MongoDatabase) -> None:
        self._events = db.collection(EVENTS)
        self._gists = db.collection(EVENT_GISTS)

    async def get(self, project_id: str, user_id: str, event_id: str) -> Event | None:
        doc = await self._events.find_one({"_id": event_key(project_id, user_id, event_id)})
        return to_event(doc) if doc else None

    async def replace(self, event: Event) -> bool:
        result = await self._events.replace_one(
            {"_id": event_key(event.project_id, event.user_id, event.event_id)}, _event_doc(event)
        )
        return result.matched_count == 1

    async def delete(self, project_id: str, user_id: str, event_id: str) -> bool:
        result = await self._events.delete_one({"_id": event_key(project_id, user_id, event_id)})
        await self.delete_gists(project_id, user_id, event_id)
        return result.deleted_count == 1

    async def delete_gists(self, project_id: str, user_id: str, event_id: str) -> None:
        await self._gists.delete_many(
            {"project_id": project_id, "user_id": user_id, "event_id": event_id}
        )

    async def add_gists(self, gists: Sequence[EventGist]) -> None:
        if gists:
            await self._gists.insert_many([_gist_doc(g) for g in gists], ordered=False)

    async def get_gist(self, key: str) -> EventGist | None:
        doc = await self._gists.find_one({"_id": key})
        return to_gist(doc) if doc else None

    async def unindexed(self, limit: int) -> list[EventGist]:
        cursor = self._gists.find({"indexed": False}).limit(limit)
        return [to_gist(doc) async for doc in cursor]

    async def set_vectors(self, gists: Sequence[EventGist]) -> None:
        for gist in gists:
            await self._gists.update_one(
                {"_id": event_key(gist.project_id, gist.user_id, gist.gist_id)},
                {
                    "$set": {
                        "vector": list(gist.vector) if gist.vector is not None else None,
                        "embedding_model": gist.embedding_model,
                    }
                },
            )

    async def mark_indexed(self, gists: Sequence[EventGist]) -> None:
        keys = [event_key(g.project_id, g.user_id, g.gist_id) for g in gists]
        if keys:
            await self._gists.update_many({"_id": {"$in": keys}}, {"$set": {"indexed": True}})

    async def mark_all_unindexed(self) -> None:
        await self._gists.update_many({}, {"$set": {"indexed": False}})
