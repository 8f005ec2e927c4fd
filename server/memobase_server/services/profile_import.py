"""Experimental: memory from a free text about the user. The text becomes one chat message and
goes through the normal pipeline, synchronously, after any chats already waiting."""

from __future__ import annotations

from memobase_server.domain.errors import InvalidArgument
from memobase_server.domain.ids import parse_uuid
from memobase_server.domain.models import BlobType
from memobase_server.services.blobs import Blobs
from memobase_server.services.flushes import FlushService

MAX_IMPORT_CHARS = 100_000
PREAMBLE = "Please remember these facts about me:\n"


class ProfileImporter:
    def __init__(self, blobs: Blobs, flushes: FlushService) -> None:
        self._blobs = blobs
        self._flushes = flushes

    async def import_text(self, project_id: str, user_id: str, text: str) -> None:
        user_id = parse_uuid(user_id, "user_id")
        if not text.strip():
            raise InvalidArgument("context must be a non-empty text")
        if len(text) > MAX_IMPORT_CHARS:
            raise InvalidArgument(f"context is longer than {MAX_IMPORT_CHARS} characters")
        await self._flushes.flush_now(project_id, user_id, BlobType.CHAT)
        blob, _ = await self._blobs.insert(
            project_id,
            user_id,
            BlobType.CHAT,
            {"messages": [{"role": "user", "content": PREAMBLE + text}]},
            None,
        )
        del blob
        await self._flushes.flush_now(project_id, user_id, BlobType.CHAT)
