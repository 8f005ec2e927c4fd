"""Typed values the client takes and returns, shaped like the official `memobase` SDK's."""

from __future__ import annotations

import enum
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal, TypeAlias


class BlobType(enum.StrEnum):
    """Kinds of memory blobs. Accepted on insert: chat, summary, doc."""

    chat = "chat"
    summary = "summary"
    doc = "doc"
    image = "image"
    code = "code"
    transcript = "transcript"


BufferStatus: TypeAlias = Literal["idle", "processing", "done", "failed"]


@dataclass(frozen=True)
class ChatMessage:
    """One message of a chat: `role` is "user" or "assistant"."""

    role: str
    content: str
    alias: str | None = None
    created_at: str | None = None

    @classmethod
    def coerce(cls, message: ChatMessage | Mapping[str, Any]) -> ChatMessage:
        """A message from an OpenAI-style dict (`{"role": ..., "content": ...}`) or itself."""
        if isinstance(message, ChatMessage):
            return message
        role, content = message.get("role"), message.get("content")
        if role not in ("user", "assistant") or not isinstance(content, str):
            raise ValueError(f"Invalid chat message: {dict(message)!r}")
        alias, created_at = message.get("alias"), message.get("created_at")
        return cls(
            role=role,
            content=content,
            alias=None if alias is None else str(alias),
            created_at=None if created_at is None else str(created_at),
        )

    def to_dict(self) -> dict[str, str]:
        out = {"role": self.role, "content": self.content}
        if self.alias is not None:
            out["alias"] = self.alias
        if self.created_at is not None:
            out["created_at"] = self.created_at
        return out


Message: TypeAlias = ChatMessage | Mapping[str, Any]
"""A chat message: a `ChatMessage` or an OpenAI-style dict."""


@dataclass
class ChatBlob:
    """A conversation; flushed into the user's profile and timeline."""

    messages: Sequence[Message]
    fields: dict[str, Any] | None = None
    created_at: datetime | None = None
    type: Literal[BlobType.chat] = field(default=BlobType.chat, init=False)

    def get_blob_data(self) -> dict[str, Any]:
        return {"messages": [ChatMessage.coerce(m).to_dict() for m in self.messages]}


@dataclass
class SummaryBlob:
    """A ready-made summary; flushed like a chat."""

    summary: str
    fields: dict[str, Any] | None = None
    created_at: datetime | None = None
    type: Literal[BlobType.summary] = field(default=BlobType.summary, init=False)

    def get_blob_data(self) -> dict[str, Any]:
        return {"summary": self.summary}


@dataclass
class DocBlob:
    """A document; stored, not processed."""

    content: str
    fields: dict[str, Any] | None = None
    created_at: datetime | None = None
    type: Literal[BlobType.doc] = field(default=BlobType.doc, init=False)

    def get_blob_data(self) -> dict[str, Any]:
        return {"content": self.content}


Blob: TypeAlias = ChatBlob | SummaryBlob | DocBlob


@dataclass(frozen=True)
class UserData:
    """A user as stored: its id, its free-form data and timestamps."""

    id: str
    data: dict[str, Any] | None
    created_at: datetime | None
    updated_at: datetime | None


@dataclass(frozen=True)
class UserProfile:
    """One profile slot: a fact about the user under topic / sub-topic."""

    id: str
    content: str
    topic: str
    sub_topic: str
    created_at: datetime | None
    updated_at: datetime | None
    update_hits: int | None = None

    @property
    def describe(self) -> str:
        """`topic: sub_topic - content`, as the SDK writes it."""
        return f"{self.topic}: {self.sub_topic} - {self.content}"


ProfilesJSON: TypeAlias = dict[str, dict[str, dict[str, Any]]]


def profiles_to_json(profiles: Sequence[UserProfile]) -> ProfilesJSON:
    """`{topic: {sub_topic: {id, content, created_at, updated_at}}}`, as the SDK's `need_json`."""
    out: defaultdict[str, dict[str, dict[str, Any]]] = defaultdict(dict)
    for p in profiles:
        out[p.topic][p.sub_topic] = {
            "id": p.id,
            "content": p.content,
            "created_at": p.created_at,
            "updated_at": p.updated_at,
        }
    return dict(out)


@dataclass(frozen=True)
class ProfileDelta:
    """A profile change recorded on an event."""

    content: str
    attributes: dict[str, str]


@dataclass(frozen=True)
class EventTag:
    tag: str
    value: str


@dataclass(frozen=True)
class EventData:
    profile_delta: list[ProfileDelta]
    event_tip: str | None
    event_tags: list[EventTag]


@dataclass(frozen=True)
class UserEvent:
    """An event on the user's timeline (`similarity` is set by searches)."""

    id: str
    event_data: EventData
    created_at: datetime | None
    updated_at: datetime | None
    similarity: float | None = None


@dataclass(frozen=True)
class EventGistData:
    content: str


@dataclass(frozen=True)
class UserEventGist:
    """One fact of an event (`similarity` is set by searches)."""

    id: str
    gist_data: EventGistData
    created_at: datetime | None
    updated_at: datetime | None
    similarity: float | None = None

    @property
    def content(self) -> str:
        return self.gist_data.content
