"""Events and gists for readers: listing, tag search, semantic search, edits."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta

from memobase_server.domain.errors import (
    InvalidArgument,
    MalformedRequest,
    NotFound,
    NotImplementedYet,
)
from memobase_server.domain.events import DeltaEntry, Event, EventGist
from memobase_server.domain.ids import parse_uuid
from memobase_server.domain.models import utcnow
from memobase_server.domain.profile_selection import positive
from memobase_server.domain.tokens import count_tokens
from memobase_server.llm.ports import Embedder
from memobase_server.services.timeline import Timeline
from memobase_server.storage.mongo.events import MongoEventEditRepo, event_key
from memobase_server.storage.ports import GistHit, GistIndex
from memobase_server.storage.redis.gist_queue import RedisGistQueue

log = logging.getLogger(__name__)

# Upstream lists only the events of the last 21 days; kept for compatibility (documented).
LIST_WINDOW_DAYS = 21
DEFAULT_TOPK = 10
MAX_TOPK = 1000
DEFAULT_THRESHOLD = 0.2
DEFAULT_DAYS = 180


@dataclass(frozen=True, slots=True)
class EventEdit:
    event_tip: str | None = None
    event_tags: tuple[tuple[str, str], ...] | None = None
    profile_delta: tuple[DeltaEntry, ...] | None = None


@dataclass(frozen=True, slots=True)
class ScoredEvent:
    event: Event
    similarity: float | None = None


def event_text(event: Event) -> str:
    """What an event costs against a token budget: tag lines, then the tip (or the delta)."""
    lines = [f"- {tag}: {value}" for tag, value in event.event_tags]
    if event.event_tip:
        lines.append(event.event_tip)
    else:
        lines.extend(f"- {d.topic}::{d.sub_topic}: {d.content}" for d in event.profile_delta)
    return "\n".join(lines)


def within_budget(events: Sequence[Event], max_tokens: int | None) -> list[Event]:
    if not max_tokens:
        return list(events)
    kept: list[Event] = []
    used = 0
    for event in events:
        used += count_tokens(event_text(event))
        if used > max_tokens:
            break
        kept.append(event)
    return kept


def parse_tag_filters(
    tags: str | None, tag_values: str | None
) -> tuple[list[str], list[tuple[str, str]]]:
    names = [t.strip() for t in (tags or "").split(",") if t.strip()]
    pairs: list[tuple[str, str]] = []
    for item in (tag_values or "").split(","):
        if not item.strip():
            continue
        tag, sep, value = item.partition("=")
        if not sep or not tag.strip():
            raise InvalidArgument(f"tag_values must be tag=value pairs, got {item.strip()!r:.80}")
        pairs.append((tag.strip(), value.strip()))
    return names, pairs


class Events:
    def __init__(
        self,
        timeline: Timeline,
        edits: MongoEventEditRepo,
        index: GistIndex | None,
        embedder: Embedder | None,
        gist_queue: RedisGistQueue,
    ) -> None:
        self._timeline = timeline
        self._edits = edits
        self._index = index
        self._embedder = embedder
        self._gist_queue = gist_queue

    async def recent(
        self, project_id: str, user_id: str, topk: int | None, max_tokens: int | None
    ) -> list[Event]:
        user_id = parse_uuid(user_id, "user_id")
        limit = self._topk(topk)
        positive(max_tokens, "max_token_size", allow_zero=True)
        since = utcnow() - timedelta(days=LIST_WINDOW_DAYS)
        events = [
            e for e in await self._timeline.events(project_id, user_id) if e.created_at > since
        ]
        events.reverse()
        return within_budget(events[:limit], max_tokens)

    async def by_tags(
        self,
        project_id: str,
        user_id: str,
        tags: str | None,
        tag_values: str | None,
        topk: int | None,
    ) -> list[Event]:
        """Tags and values are compared as data: any character is allowed in them."""
        user_id = parse_uuid(user_id, "user_id")
        limit = self._topk(topk)
        names, pairs = parse_tag_filters(tags, tag_values)
        matches = []
        for event in reversed(await self._timeline.events(project_id, user_id)):
            carried = dict(event.event_tags)
            if all(n in carried for n in names) and all(carried.get(t) == v for t, v in pairs):
                matches.append(event)
                if len(matches) == limit:
                    break
        return matches

    async def search_gists(
        self,
        project_id: str,
        user_id: str,
        query: str,
        topk: int | None,
        threshold: float | None,
        days: int | None,
    ) -> list[GistHit]:
        user_id = parse_uuid(user_id, "user_id")
        return await self._search(project_id, user_id, query, self._topk(topk), threshold, days)

    async def search_events(
        self,
        project_id: str,
        user_id: str,
        query: str,
        topk: int | None,
        threshold: float | None,
        days: int | None,
    ) -> list[ScoredEvent]:
        """Events ranked by their best-matching gist."""
        user_id = parse_uuid(user_id, "user_id")
        limit = self._topk(topk)
        hits = await self._search(project_id, user_id, query, limit * 5, threshold, days)
        best: dict[str, float] = {}
        for hit in hits:
            best[hit.event_id] = max(best.get(hit.event_id, -1.0), hit.similarity)
        ranked = sorted(best.items(), key=lambda item: item[1], reverse=True)[:limit]
        found = []
        for event_id, similarity in ranked:
            event = await self._edits.get(project_id, user_id, event_id)
            if event is not None:
                found.append(ScoredEvent(event, similarity))
        return found

    async def _search(
        self,
        project_id: str,
        user_id: str,
        query: str,
        limit: int,
        threshold: float | None,
        days: int | None,
    ) -> list[GistHit]:
        if not query.strip():
            raise MalformedRequest("query is required")
        similarity = DEFAULT_THRESHOLD if threshold is None else threshold
        if not -1.0 <= similarity <= 1.0:
            raise InvalidArgument("similarity_threshold must be between -1 and 1")
        window = positive(days, "time_range_in_days") or DEFAULT_DAYS
        if self._index is None or self._embedder is None:
            raise NotImplementedYet("Event search needs event embeddings (enable_event_embedding)")
        [vector] = await self._embedder.embed([query], "query")
        return await self._index.search(
            project_id,
            user_id,
            vector,
            limit=limit,
            min_similarity=similarity,
            since=utcnow() - timedelta(days=window),
        )

    async def update(self, project_id: str, user_id: str, event_id: str, edit: EventEdit) -> None:
        """Each given field replaces the stored one; a changed tip re-makes the gists."""
        user_id, event_id = parse_uuid(user_id, "user_id"), parse_uuid(event_id, "event_id")
        event = await self._edits.get(project_id, user_id, event_id)
        if event is None:
            raise NotFound(f"Event {event_id} not found")
        updated = replace(
            event,
            event_tip=edit.event_tip if edit.event_tip is not None else event.event_tip,
            event_tags=edit.event_tags if edit.event_tags is not None else event.event_tags,
            profile_delta=edit.profile_delta
            if edit.profile_delta is not None
            else event.profile_delta,
            updated_at=utcnow(),
        )
        if not await self._edits.replace(updated):
            raise NotFound(f"Event {event_id} not found")
        if updated.event_tip != event.event_tip:
            await self._remake_gists(updated)
        await self._timeline.changed(project_id, user_id)

    async def delete(self, project_id: str, user_id: str, event_id: str) -> None:
        user_id, event_id = parse_uuid(user_id, "user_id"), parse_uuid(event_id, "event_id")
        if not await self._edits.delete(project_id, user_id, event_id):
            raise NotFound(f"Event {event_id} not found")
        if self._index is not None:
            await self._index.delete_event(project_id, user_id, event_id)
        await self._timeline.changed(project_id, user_id)

    async def _remake_gists(self, event: Event) -> None:
        await self._edits.delete_gists(event.project_id, event.user_id, event.event_id)
        if self._index is not None:
            await self._index.delete_event(event.project_id, event.user_id, event.event_id)
        lines = [line for line in (event.event_tip or "").splitlines() if line.strip()]
        stamp = event.updated_at
        gists = [
            EventGist(
                project_id=event.project_id,
                user_id=event.user_id,
                gist_id=gist_id_for(event.event_id, stamp, i),
                event_id=event.event_id,
                content=line.strip(),
                created_at=event.created_at,
            )
            for i, line in enumerate(lines)
        ]
        await self._edits.add_gists(event, gists)
        await self._gist_queue.push([event_key(event.project_id, event.user_id, event.event_id)])

    @staticmethod
    def _topk(topk: int | None) -> int:
        value = DEFAULT_TOPK if topk is None else topk
        if not 1 <= value <= MAX_TOPK:
            raise InvalidArgument(f"topk must be between 1 and {MAX_TOPK}")
        return value


def gist_id_for(event_id: str, version: datetime, index: int) -> str:
    return str(uuid.uuid5(uuid.UUID(event_id), f"{version.isoformat()}:{index}"))
