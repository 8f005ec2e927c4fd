"""Narrow storage interfaces the services depend on. Adapters live beside this module."""

from __future__ import annotations

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
    async def insert(self, blob: Blob) -> Blob:
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


class ProjectKeyCache(Protocol):
    """Caches a project's key hash and status for the auth path; dropped on every key change."""

    async def get(self, project_id: str) -> tuple[str | None, ProjectStatus] | None: ...

    async def put(
        self, project_id: str, secret_hash: str | None, status: ProjectStatus
    ) -> None: ...

    async def drop(self, project_id: str) -> None: ...
