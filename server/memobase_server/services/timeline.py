"""A user's events and gists as readers see them: MongoDB behind versioned Redis read caches.
Every event or gist write goes through `added` (a flush's new event: the cached lists are
extended when current) or `changed` (edits: both are invalidated and filled again through the
read path, so the version protocol keeps it safe): the first read after a flush or an edit is
a cache hit, and the writer, not the next reader, pays for it."""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any

from memobase_server.domain.events import DeltaEntry, Event, EventGist
from memobase_server.storage.mongo.events import MongoEventRepo
from memobase_server.storage.redis.read_cache import RedisReadCache

log = logging.getLogger(__name__)


def _encode_event(event: Event) -> dict[str, Any]:
    return {
        "id": event.event_id,
        "tip": event.event_tip,
        "tags": [list(t) for t in event.event_tags],
        "delta": [[d.content, d.topic, d.sub_topic] for d in event.profile_delta],
        "created_at": event.created_at.isoformat(),
        "updated_at": event.updated_at.isoformat(),
    }


def _decode_event(project_id: str, user_id: str, raw: dict[str, Any]) -> Event:
    return Event(
        project_id=project_id,
        user_id=user_id,
        event_id=raw["id"],
        event_tip=raw["tip"],
        event_tags=tuple((t, v) for t, v in raw["tags"]),
        profile_delta=tuple(DeltaEntry(c, t, s) for c, t, s in raw["delta"]),
        created_at=datetime.fromisoformat(raw["created_at"]),
        updated_at=datetime.fromisoformat(raw["updated_at"]),
    )


def _encode_gist(gist: EventGist) -> dict[str, Any]:
    return {
        "id": gist.gist_id,
        "event_id": gist.event_id,
        "content": gist.content,
        "created_at": gist.created_at.isoformat(),
    }


def _decode_gist(project_id: str, user_id: str, raw: dict[str, Any]) -> EventGist:
    return EventGist(
        project_id=project_id,
        user_id=user_id,
        gist_id=raw["id"],
        event_id=raw["event_id"],
        content=raw["content"],
        created_at=datetime.fromisoformat(raw["created_at"]),
    )


def _appending(
    new: list[dict[str, Any]],
) -> Callable[[list[dict[str, Any]]], list[dict[str, Any]]]:
    """Adds entries to a cached list in the order MongoDB returns it (time, then id),
    skipping those already there (a resumed write)."""

    def change(cached: list[dict[str, Any]]) -> list[dict[str, Any]]:
        known = {entry["id"] for entry in cached}
        merged = cached + [entry for entry in new if entry["id"] not in known]
        return sorted(merged, key=lambda e: (datetime.fromisoformat(e["created_at"]), e["id"]))

    return change


class Timeline:
    def __init__(
        self, repo: MongoEventRepo, events_cache: RedisReadCache, gists_cache: RedisReadCache
    ) -> None:
        self._repo = repo
        self._events_cache = events_cache
        self._gists_cache = gists_cache

    async def events(self, project_id: str, user_id: str) -> list[Event]:
        """Oldest first."""
        version, cached = await self._events_cache.get(project_id, user_id)
        if cached is not None:
            return [_decode_event(project_id, user_id, e) for e in cached]
        events = await self._repo.list_events(project_id, user_id)
        await self._events_cache.put(
            project_id, user_id, version, [_encode_event(e) for e in events]
        )
        return events

    async def gists(self, project_id: str, user_id: str) -> list[EventGist]:
        """Oldest first, without vectors."""
        version, cached = await self._gists_cache.get(project_id, user_id)
        if cached is not None:
            return [_decode_gist(project_id, user_id, g) for g in cached]
        gists = await self._repo.list_gists(project_id, user_id)
        await self._gists_cache.put(project_id, user_id, version, [_encode_gist(g) for g in gists])
        return gists

    async def added(self, event: Event, gists: Sequence[EventGist]) -> None:
        """After a new event and its gists are stored: the cached timeline, when current, is
        extended with them (no read of MongoDB); otherwise it is filled from MongoDB."""
        project_id, user_id = event.project_id, event.user_id
        try:
            if not await self._events_cache.amend(
                project_id, user_id, _appending([_encode_event(event)])
            ):
                await self.events(project_id, user_id)
            if not await self._gists_cache.amend(
                project_id, user_id, _appending([_encode_gist(g) for g in gists])
            ):
                await self.gists(project_id, user_id)
        except Exception as exc:  # the write is done; the next reader loads instead
            log.warning("timeline cache not refilled: %r", exc)

    async def changed(self, project_id: str, user_id: str) -> None:
        await self._invalidate(project_id, user_id)
        try:
            await self.events(project_id, user_id)
            await self.gists(project_id, user_id)
        except Exception as exc:  # the write is done; the next reader loads instead
            log.warning("timeline cache not refilled: %r", exc)

    async def _invalidate(self, project_id: str, user_id: str) -> None:
        await self._events_cache.bump(project_id, user_id)
        await self._gists_cache.bump(project_id, user_id)

    async def purge(self, project_id: str, user_id: str) -> None:
        await self._invalidate(project_id, user_id)
