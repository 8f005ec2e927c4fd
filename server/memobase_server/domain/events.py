"""Events on a user's timeline and their gists (one fact each, searchable)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime


@dataclass(frozen=True, slots=True)
class DeltaEntry:
    content: str
    topic: str
    sub_topic: str


@dataclass(frozen=True, slots=True)
class Event:
    project_id: str
    user_id: str
    event_id: str
    event_tip: str | None
    event_tags: tuple[tuple[str, str], ...]
    profile_delta: tuple[DeltaEntry, ...]
    created_at: datetime
    updated_at: datetime
    flush_id: str | None = None


@dataclass(frozen=True, slots=True)
class EventGist:
    project_id: str
    user_id: str
    gist_id: str
    event_id: str
    content: str
    created_at: datetime
    vector: tuple[float, ...] | None = None
    embedding_model: str | None = None
