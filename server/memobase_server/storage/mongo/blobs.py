"""BlobRepo on MongoDB. A blob's buffer entry lives inside the blob's document, so storing a
blob and queueing it for a flush is one atomic write (FerretDB has no transactions)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from pymongo import ASCENDING
from pymongo.errors import DuplicateKeyError

from memobase_server.domain.errors import AlreadyExists
from memobase_server.domain.models import Blob, BlobType, BufferEntry, BufferStatus, utcnow
from memobase_server.storage.mongo.database import BLOBS, Document, MongoDatabase

# Blobs stored under a client's idempotency key, and what is left of them once processed.
_KEYED = "idempotency_key_used"
_TOMBSTONE = "tombstone"


def blob_key(project_id: str, user_id: str, blob_id: str) -> str:
    return f"{project_id}:{user_id}:{blob_id}"


def _to_doc(blob: Blob) -> Document:
    doc: Document = {
        "_id": blob_key(blob.project_id, blob.user_id, blob.blob_id),
        "project_id": blob.project_id,
        "user_id": blob.user_id,
        "blob_id": blob.blob_id,
        "blob_type": blob.blob_type.value,
        "blob_data": blob.blob_data,
        "fields": blob.fields,
        "created_at": blob.created_at,
        "updated_at": blob.updated_at,
        "buffer": None,
    }
    if blob.buffer is not None:
        doc["buffer"] = {
            "entry_id": blob.buffer.entry_id,
            "status": blob.buffer.status.value,
            "token_size": blob.buffer.token_size,
            "updated_at": blob.buffer.updated_at,
        }
    return doc


def _to_blob(doc: Document) -> Blob:
    buffer = doc.get("buffer")
    return Blob(
        project_id=doc["project_id"],
        user_id=doc["user_id"],
        blob_id=doc["blob_id"],
        blob_type=BlobType(doc["blob_type"]),
        blob_data=doc["blob_data"],
        fields=doc.get("fields"),
        created_at=doc["created_at"],
        updated_at=doc["updated_at"],
        buffer=BufferEntry(
            entry_id=buffer["entry_id"],
            status=BufferStatus(buffer["status"]),
            token_size=buffer["token_size"],
            updated_at=buffer["updated_at"],
        )
        if buffer
        else None,
    )


class MongoBlobRepo:
    def __init__(self, db: MongoDatabase) -> None:
        self._blobs = db.collection(BLOBS)

    async def insert(self, blob: Blob, *, keyed: bool = False) -> Blob:
        """`keyed`: the blob's id comes from a client's idempotency key; once processed it is
        kept as a tombstone (no content), so a late retry finds it and is not applied again."""
        doc = _to_doc(blob)
        if keyed:
            doc[_KEYED] = True
        try:
            await self._blobs.insert_one(doc)
        except DuplicateKeyError:
            stored = await self._blobs.find_one(
                {"_id": blob_key(blob.project_id, blob.user_id, blob.blob_id)}
            )
            if stored is None:  # deleted between the two calls
                raise AlreadyExists(f"Blob {blob.blob_id} was stored and deleted") from None
            return _to_blob(stored)
        return blob

    async def get(self, project_id: str, user_id: str, blob_id: str) -> Blob | None:
        doc = await self._blobs.find_one({"_id": blob_key(project_id, user_id, blob_id)})
        return _to_blob(doc) if doc and not doc.get(_TOMBSTONE) else None

    async def delete(self, project_id: str, user_id: str, blob_id: str) -> None:
        await self._blobs.delete_one({"_id": blob_key(project_id, user_id, blob_id)})

    async def list_ids(
        self, project_id: str, user_id: str, blob_type: BlobType, offset: int, limit: int
    ) -> list[str]:
        cursor = (
            self._blobs.find(
                {
                    "project_id": project_id,
                    "user_id": user_id,
                    "blob_type": blob_type.value,
                    _TOMBSTONE: {"$ne": True},
                },
                projection={"blob_id": 1},
            )
            .sort([("created_at", ASCENDING), ("_id", ASCENDING)])
            .skip(offset)
            .limit(limit)
        )
        return [doc["blob_id"] async for doc in cursor]

    async def buffer_entry_ids(
        self, project_id: str, user_id: str, blob_type: BlobType, status: BufferStatus
    ) -> list[str]:
        cursor = self._blobs.find(
            {
                "project_id": project_id,
                "user_id": user_id,
                "blob_type": blob_type.value,
                "buffer.status": status.value,
                _TOMBSTONE: {"$ne": True},
            },
            projection={"buffer.entry_id": 1},
        ).sort([("created_at", ASCENDING), ("_id", ASCENDING)])
        return [doc["buffer"]["entry_id"] async for doc in cursor]


class MongoBufferRepo:
    """The buffer side of blob documents: claiming entries for a flush and settling them."""

    def __init__(self, db: MongoDatabase) -> None:
        self._blobs = db.collection(BLOBS)

    async def waiting(
        self,
        project_id: str,
        user_id: str,
        blob_type: BlobType,
        *,
        max_tokens: int,
        max_attempts: int,
    ) -> list[str]:
        """Keys of the oldest waiting entries (idle, or failed fewer than `max_attempts`
        times), up to `max_tokens` (at least one)."""
        waiting = self._blobs.find(
            {
                "project_id": project_id,
                "user_id": user_id,
                "blob_type": blob_type.value,
                "$or": [
                    {"buffer.status": BufferStatus.IDLE.value},
                    {
                        "buffer.status": BufferStatus.FAILED.value,
                        "buffer.attempts": {"$lt": max_attempts},
                    },
                ],
            },
            projection={"_id": 1, "buffer.token_size": 1},
        ).sort([("created_at", ASCENDING), ("_id", ASCENDING)])
        chosen: list[str] = []
        total = 0
        async for doc in waiting:
            size = int(doc["buffer"].get("token_size", 0))
            if chosen and total + size > max_tokens:
                break
            chosen.append(doc["_id"])
            total += size
        return chosen

    async def claim(self, keys: list[str], flush_id: str) -> list[Blob]:
        """Marks the entries processing by `flush_id` (those still waiting) and returns the
        ones it holds. Call after the flush's record is written, so a crash in between
        leaves entries that the record names and recovery releases."""
        await self._blobs.update_many(
            {
                "_id": {"$in": keys},
                "buffer.status": {"$in": [BufferStatus.IDLE.value, BufferStatus.FAILED.value]},
            },
            {
                "$set": {
                    "buffer.status": BufferStatus.PROCESSING.value,
                    "buffer.flush_id": flush_id,
                    "buffer.updated_at": utcnow(),
                },
                "$inc": {"buffer.attempts": 1},
            },
        )
        return await self.of_flush(flush_id)

    async def processing_flush_ids(self, project_id: str, user_id: str) -> set[str]:
        cursor = self._blobs.find(
            {
                "project_id": project_id,
                "user_id": user_id,
                "buffer.status": BufferStatus.PROCESSING.value,
            },
            projection={"buffer.flush_id": 1},
        )
        return {doc["buffer"]["flush_id"] async for doc in cursor if doc["buffer"].get("flush_id")}

    async def of_flush(self, flush_id: str) -> list[Blob]:
        cursor = self._blobs.find({"buffer.flush_id": flush_id}).sort(
            [("created_at", ASCENDING), ("_id", ASCENDING)]
        )
        return [_to_blob(doc) async for doc in cursor]

    async def settle(
        self, flush_id: str, status: BufferStatus, *, error: str | None = None, delete: bool = False
    ) -> None:
        """Ends a flush's entries in `status` (done or failed); done chats may be deleted."""
        selector = {"buffer.flush_id": flush_id, "buffer.status": BufferStatus.PROCESSING.value}
        if delete:
            await self._blobs.update_many(
                {**selector, _KEYED: True},
                {
                    "$set": {
                        _TOMBSTONE: True,
                        "blob_data": {},
                        "fields": None,
                        "buffer.status": BufferStatus.DONE.value,
                        "buffer.updated_at": utcnow(),
                    }
                },
            )
            await self._blobs.delete_many(selector)
            return
        await self._blobs.update_many(
            selector,
            {
                "$set": {
                    "buffer.status": status.value,
                    "buffer.error": error,
                    "buffer.updated_at": utcnow(),
                }
            },
        )

    async def release(self, flush_id: str) -> None:
        """Puts the entries of an abandoned flush back to idle."""
        await self._blobs.update_many(
            {"buffer.flush_id": flush_id, "buffer.status": BufferStatus.PROCESSING.value},
            {
                "$set": {
                    "buffer.status": BufferStatus.IDLE.value,
                    "buffer.flush_id": None,
                    "buffer.updated_at": utcnow(),
                },
                "$inc": {"buffer.attempts": -1},
            },
        )

    async def pending(self, max_attempts: int) -> dict[tuple[str, str, str], BufferSummary]:
        """Every (project, user, type) with entries still to apply."""
        cursor = self._blobs.find(
            {
                "$or": [
                    {
                        "buffer.status": {
                            "$in": [BufferStatus.IDLE.value, BufferStatus.PROCESSING.value]
                        }
                    },
                    {
                        "buffer.status": BufferStatus.FAILED.value,
                        "buffer.attempts": {"$lt": max_attempts},
                    },
                ]
            },
            projection={
                "project_id": 1,
                "user_id": 1,
                "blob_type": 1,
                "buffer": 1,
                "created_at": 1,
            },
        )
        found: dict[tuple[str, str, str], BufferSummary] = {}
        async for doc in cursor:
            key = (doc["project_id"], doc["user_id"], doc["blob_type"])
            summary = found.setdefault(key, BufferSummary())
            if doc["buffer"]["status"] == BufferStatus.IDLE.value:
                summary.idle_tokens += int(doc["buffer"]["token_size"])
                if summary.last_idle_at is None or doc["created_at"] > summary.last_idle_at:
                    summary.last_idle_at = doc["created_at"]
            else:
                summary.unfinished = True
        return found


@dataclass
class BufferSummary:
    idle_tokens: int = 0
    last_idle_at: datetime | None = None
    # Entries left processing by a dead flush, or failed ones to retry.
    unfinished: bool = False
