"""Narrow storage interfaces the services depend on. Adapters live beside this module."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from memobase_server.domain.models import (
    Blob,
    BlobType,
    BufferStatus,
    JsonObject,
    Project,
    ProjectStatus,
    User,
)


class UserRepo(Protocol):
    async def insert(self, user: User) -> None:
        """Raises AlreadyExists when the id is taken."""

    async def get(self, project_id: str, user_id: str) -> User | None: ...

    async def exists(self, project_id: str, user_id: str) -> bool: ...

    async def replace_data(
        self, project_id: str, user_id: str, data: JsonObject | None, now: datetime
    ) -> bool:
        """Returns False when the user does not exist."""

    async def delete(self, project_id: str, user_id: str) -> bool:
        """Returns False when the user did not exist."""


class BlobRepo(Protocol):
    async def insert(self, blob: Blob, *, keyed: bool = False) -> Blob:
        """Stores the blob (and its buffer entry) in one write. When a blob with the same id
        exists already (a retried idempotent insert), returns the stored one unchanged."""

    async def get(self, project_id: str, user_id: str, blob_id: str) -> Blob | None: ...

    async def delete(self, project_id: str, user_id: str, blob_id: str) -> None: ...

    async def list_ids(
        self, project_id: str, user_id: str, blob_type: BlobType, offset: int, limit: int
    ) -> list[str]: ...

    async def buffer_entry_ids(
        self, project_id: str, user_id: str, blob_type: BlobType, status: BufferStatus
    ) -> list[str]: ...


class KnownUsers(Protocol):
    """A cache of which users exist, for the insert path."""

    async def known(self, project_id: str, user_id: str) -> bool: ...

    async def remember(self, project_id: str, user_id: str) -> None: ...

    async def forget(self, project_id: str, user_id: str) -> None: ...


class UserDataPurger(Protocol):
    async def purge(self, project_id: str, user_id: str) -> None:
        """Deletes everything stored for the user: blobs, buffer, profiles, events, gists."""


class ProjectRepo(Protocol):
    async def get(self, project_id: str) -> Project | None: ...

    async def insert(self, project: Project) -> None:
        """Raises AlreadyExists when the id is taken."""

    async def set_secret(
        self, project_id: str, secret_hash: str | None, status: ProjectStatus
    ) -> bool: ...

    async def list(self) -> list[Project]: ...


@dataclass(frozen=True, slots=True)
class KeyEntry:
    """What the auth path needs of a project: its key's hash and status; `exists` False for
    a project id that names no project (so unknown keys cost no database read either)."""

    exists: bool
    secret_hash: str | None = None
    status: ProjectStatus | None = None


class ProjectKeyCache(Protocol):
    """Caches the auth path's `KeyEntry` per project, versioned: `get` returns the version to
    `put` a loaded entry under, and every change of a project's key calls `changed` after
    writing it, so an entry loaded before the change is never served after it."""

    async def get(self, project_id: str) -> tuple[int, KeyEntry | None]: ...

    async def put(self, project_id: str, version: int, entry: KeyEntry) -> None: ...

    async def changed(self, project_id: str) -> None: ...


@dataclass(frozen=True, slots=True)
class GistPoint:
    """One event gist in the vector index, carrying everything a search answer needs."""

    gist_id: str
    project_id: str
    user_id: str
    event_id: str
    created_at: datetime
    tags: tuple[str, ...]
    content: str
    vector: Sequence[float]


@dataclass(frozen=True, slots=True)
class GistHit:
    gist_id: str
    event_id: str
    content: str
    created_at: datetime
    similarity: float


class GistIndex(Protocol):
    """The vector index of event gists. It is derived data: MongoDB holds every gist with its
    embedding, and the index can be rebuilt from there at any time."""

    async def open(self) -> None:
        """Creates the collection (named for the embedding model and dimension) if absent."""

    async def upsert(self, points: Sequence[GistPoint]) -> None:
        """Idempotent: a point with a known gist_id is replaced."""

    async def search(
        self,
        project_id: str,
        user_id: str,
        vector: Sequence[float],
        *,
        limit: int,
        min_similarity: float,
        since: datetime | None,
    ) -> list[GistHit]:
        """Most similar first; only the user's points, cosine similarity > min_similarity,
        created after `since` when given."""

    async def delete_event(self, project_id: str, user_id: str, event_id: str) -> None: ...

    async def delete_user(self, project_id: str, user_id: str) -> None: ...

    async def count(self, project_id: str | None = None) -> int: ...

    async def close(self) -> None: ...
