"""BlobRepo on MongoDB. A blob's buffer entry lives inside the blob's document, so storing a
blob and queueing it for a flush is one atomic write (FerretDB has no transactions)."""

from __future__ import annotations

from pymongo import ASCENDING
from pymongo.errors import DuplicateKeyError

from memobase_server.domain.errors import AlreadyExists
from memobase_server.domain.models import Blob, BlobType, BufferEntry, BufferStatus
from memobase_server.storage.mongo.database import BLOBS, Document, MongoDatabase


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

    async def insert(self, blob: Blob) -> Blob:
        try:
            await self._blobs.insert_one(_to_doc(blob))
        except DuplicateKeyError:
            stored = await self.get(blob.project_id, blob.user_id, blob.blob_id)
            if stored is None:  # deleted between the two calls
                raise AlreadyExists(f"Blob {blob.blob_id} was stored and deleted") from None
            return stored
        return blob

    async def get(self, project_id: str, user_id: str, blob_id: str) -> Blob | None:
        doc = await self._blobs.find_one({"_id": blob_key(project_id, user_id, blob_id)})
        return _to_blob(doc) if doc else None

    async def delete(self, project_id: str, user_id: str, blob_id: str) -> None:
        await self._blobs.delete_one({"_id": blob_key(project_id, user_id, blob_id)})

    async def list_ids(
        self, project_id: str, user_id: str, blob_type: BlobType, offset: int, limit: int
    ) -> list[str]:
        cursor = (
            self._blobs.find(
                {"project_id": project_id, "user_id": user_id, "blob_type": blob_type.value},
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
            },
            projection={"buffer.entry_id": 1},
        ).sort([("created_at", ASCENDING), ("_id", ASCENDING)])
        return [doc["buffer"]["entry_id"] async for doc in cursor]
