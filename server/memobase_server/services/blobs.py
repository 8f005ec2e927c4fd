"""Blobs and the buffer: insert (durable before it is acknowledged), read, delete, list."""

from __future__ import annotations

from datetime import tzinfo

from memobase_server.domain.blobs import parse_blob_data
from memobase_server.domain.errors import InvalidArgument, NotFound
from memobase_server.domain.ids import idempotent_id, new_id, parse_uuid
from memobase_server.domain.models import (
    BUFFERED_BLOB_TYPES,
    Blob,
    BlobType,
    BufferEntry,
    BufferStatus,
    JsonObject,
    utcnow,
)
from memobase_server.domain.tokens import count_tokens
from memobase_server.pipeline.render import render_blob
from memobase_server.services.users import Users
from memobase_server.storage.ports import BlobRepo

MAX_PAGE_SIZE = 1000
DEFAULT_PAGE_SIZE = 10


class Blobs:
    def __init__(self, blobs: BlobRepo, users: Users, timezone: tzinfo | None) -> None:
        self._blobs = blobs
        self._users = users
        self._timezone = timezone

    async def insert(
        self,
        project_id: str,
        user_id: str,
        blob_type: BlobType,
        blob_data: JsonObject | None,
        fields: JsonObject | None,
        idempotency_key: str | None = None,
    ) -> tuple[Blob, bool]:
        """The stored blob, and whether this call stored it (False for a retried insert)."""
        user_id = parse_uuid(user_id, "user_id")
        payload = parse_blob_data(blob_type, blob_data)
        await self._users.require(project_id, user_id)
        now = utcnow()
        if idempotency_key is not None:
            blob_id = idempotent_id(f"{project_id}:{user_id}:blob", idempotency_key)
            entry_id = idempotent_id(f"{project_id}:{user_id}:entry", idempotency_key)
        else:
            blob_id, entry_id = new_id(), new_id()
        buffer = None
        if blob_type in BUFFERED_BLOB_TYPES:
            tokens = count_tokens(render_blob(blob_type, payload, now, self._timezone))
            buffer = BufferEntry(entry_id, BufferStatus.IDLE, tokens, now)
        blob = Blob(project_id, user_id, blob_id, blob_type, payload, fields, now, now, buffer)
        stored = await self._blobs.insert(blob, keyed=idempotency_key is not None)
        return stored, stored is blob

    async def get(self, project_id: str, user_id: str, blob_id: str) -> Blob:
        user_id = parse_uuid(user_id, "user_id")
        blob_id = parse_uuid(blob_id, "blob_id")
        blob = await self._blobs.get(project_id, user_id, blob_id)
        if blob is None:
            raise NotFound(f"Blob {blob_id} not found")
        return blob

    async def delete(self, project_id: str, user_id: str, blob_id: str) -> None:
        user_id = parse_uuid(user_id, "user_id")
        blob_id = parse_uuid(blob_id, "blob_id")
        await self._blobs.delete(project_id, user_id, blob_id)

    async def list_ids(
        self,
        project_id: str,
        user_id: str,
        blob_type: BlobType,
        page: int,
        page_size: int | None,
    ) -> list[str]:
        user_id = parse_uuid(user_id, "user_id")
        size = DEFAULT_PAGE_SIZE if page_size is None else page_size
        if page < 0:
            raise InvalidArgument("page must be 0 or more")
        if not 1 <= size <= MAX_PAGE_SIZE:
            raise InvalidArgument(f"page_size must be between 1 and {MAX_PAGE_SIZE}")
        return await self._blobs.list_ids(project_id, user_id, blob_type, page * size, size)

    async def buffer_entry_ids(
        self, project_id: str, user_id: str, blob_type: BlobType, status: BufferStatus
    ) -> list[str]:
        user_id = parse_uuid(user_id, "user_id")
        return await self._blobs.buffer_entry_ids(project_id, user_id, blob_type, status)
