"""The vocabulary of the service: plain immutable records, no I/O."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

JsonObject = dict[str, Any]


class BlobType(StrEnum):
    CHAT = "chat"
    SUMMARY = "summary"
    DOC = "doc"
    IMAGE = "image"
    CODE = "code"
    TRANSCRIPT = "transcript"


# Types accepted on insert, and the subset that goes through the flush pipeline.
STORABLE_BLOB_TYPES = frozenset({BlobType.CHAT, BlobType.SUMMARY, BlobType.DOC})
BUFFERED_BLOB_TYPES = frozenset({BlobType.CHAT, BlobType.SUMMARY})


class BufferStatus(StrEnum):
    IDLE = "idle"
    PROCESSING = "processing"
    DONE = "done"
    FAILED = "failed"


class ProjectStatus(StrEnum):
    ACTIVE = "active"
    REVOKED = "revoked"


ROOT_PROJECT_ID = "__root__"


def utcnow() -> datetime:
    """Now, at the millisecond precision MongoDB stores, so reads equal what was written."""
    now = datetime.now(UTC)
    return now.replace(microsecond=now.microsecond // 1000 * 1000)


@dataclass(frozen=True, slots=True)
class User:
    project_id: str
    user_id: str
    data: JsonObject | None
    created_at: datetime
    updated_at: datetime


@dataclass(frozen=True, slots=True)
class BufferEntry:
    entry_id: str
    status: BufferStatus
    token_size: int
    updated_at: datetime


@dataclass(frozen=True, slots=True)
class Blob:
    project_id: str
    user_id: str
    blob_id: str
    blob_type: BlobType
    blob_data: JsonObject
    fields: JsonObject | None
    created_at: datetime
    updated_at: datetime
    buffer: BufferEntry | None = None


@dataclass(frozen=True, slots=True)
class Project:
    project_id: str
    secret_hash: str | None
    status: ProjectStatus
    profile_config: str | None
    created_at: datetime


@dataclass(frozen=True, slots=True)
class Principal:
    """Who is calling: the project a token resolved to."""

    project_id: str

    @property
    def is_root(self) -> bool:
        return self.project_id == ROOT_PROJECT_ID
