"""BlobRepo on MongoDB. A blob's buffer entry lives inside the blob's document, so storing a
blob and queueing it for a flush is one atomic write (FerretDB has no transactions)."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, replace
from datetime import datetime

from pymongo import ASCENDING
from pymongo.errors import BulkWriteError, DuplicateKeyError

from memobase_server.domain.errors import AlreadyExists
from memobase_server.domain.models import Blob, BlobType, BufferEntry, BufferStatus, utcnow
from memobase_server.storage.mongo.database import (
    BLOBS,
    BUFFER_CLAIMS,
    DUE,
    DUE_BUFFER,
    DUPLICATE_KEY,
    Document,
    MongoDatabase,
)
from memobase_server.storage.mongo.json_text import from_text, to_text

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
        "fields": to_text(blob.fields),
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
            "claims": 0,
        }
        if blob.buffer.status is not BufferStatus.DONE:
            doc[DUE] = DUE_BUFFER
    return doc


def _to_blob(doc: Document) -> Blob:
    buffer = doc.get("buffer")
    return Blob(
        project_id=doc["project_id"],
        user_id=doc["user_id"],
        blob_id=doc["blob_id"],
        blob_type=BlobType(doc["blob_type"]),
        blob_data=doc["blob_data"],
        fields=from_text(doc.get("fields")),
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
        selector: Document = {
            "project_id": project_id,
            "user_id": user_id,
            "blob_type": blob_type.value,
            "buffer.status": status.value,
            _TOMBSTONE: {"$ne": True},
        }
        if status is not BufferStatus.DONE:
            selector[DUE] = DUE_BUFFER
        cursor = self._blobs.find(selector, projection={"buffer.entry_id": 1}).sort(
            [("created_at", ASCENDING), ("_id", ASCENDING)]
        )
        return [doc["buffer"]["entry_id"] async for doc in cursor]


@dataclass(frozen=True, slots=True)
class WaitingEntry:
    key: str
    blob: Blob
    claims: int
    """How many times the entry was claimed so far: the next claim's fence is `claims + 1`."""

    @property
    def blob_id(self) -> str:
        return self.blob.blob_id


@dataclass(frozen=True, slots=True)
class WaitingBatch:
    entries: list[WaitingEntry]
    complete: bool
    """No other entry was waiting (when it was read)."""


class MongoBufferRepo:
    """The buffer side of blob documents: claiming entries for a flush and settling them.
    Entries not yet done carry `due`, so every query here reads only the entries still in
    play (of one user, or, for the reconciler, of everyone), however many chats are kept.

    A claim is decided per entry by inserting its fence `<entry key>:c<n>` (n counts the
    entry's claims and never goes back): a unique insert has one winner, also on FerretDB,
    whose conditional updates are not atomic under concurrency. So two flushes of one user
    that run at once (a worker that lost its lease to a Redis wipe carries on) never hold the
    same entry."""

    def __init__(self, db: MongoDatabase) -> None:
        self._blobs = db.collection(BLOBS)
        self._claims = db.collection(BUFFER_CLAIMS)

    @staticmethod
    def _of_user(project_id: str, user_id: str, **more: object) -> Document:
        return {"project_id": project_id, "user_id": user_id, DUE: DUE_BUFFER, **more}

    async def next_batch(
        self,
        project_id: str,
        user_id: str,
        blob_type: BlobType,
        *,
        max_tokens: int,
        max_attempts: int,
    ) -> WaitingBatch:
        """The oldest waiting entries (idle, or failed fewer than `max_attempts` times), up
        to `max_tokens` (at least one), and whether those were all the entries waiting."""
        waiting = self._blobs.find(
            {
                **self._of_user(project_id, user_id),
                "blob_type": blob_type.value,
                "$or": [
                    {"buffer.status": BufferStatus.IDLE.value},
                    {
                        "buffer.status": BufferStatus.FAILED.value,
                        "buffer.attempts": {"$lt": max_attempts},
                    },
                ],
            },
        ).sort([("created_at", ASCENDING), ("_id", ASCENDING)])
        chosen: list[WaitingEntry] = []
        total = 0
        async for doc in waiting:
            size = int(doc["buffer"].get("token_size", 0))
            if chosen and total + size > max_tokens:
                await waiting.close()
                return WaitingBatch(chosen, complete=False)
            chosen.append(
                WaitingEntry(doc["_id"], _to_blob(doc), int(doc["buffer"].get("claims", 0)))
            )
            total += size
        return WaitingBatch(chosen, complete=True)

    async def _win_claims(
        self, project_id: str, user_id: str, entries: list[WaitingEntry], flush_id: str
    ) -> list[str]:
        """Inserts the entries' claim fences; returns the keys whose fence this flush won."""
        fences = [
            {
                "_id": f"{e.key}:c{e.claims + 1}",
                "project_id": project_id,
                "user_id": user_id,
                "flush_id": flush_id,
            }
            for e in entries
        ]
        lost: set[int] = set()
        try:
            await self._claims.insert_many(fences, ordered=False)
        except BulkWriteError as exc:
            errors = exc.details.get("writeErrors", [])
            if any(e.get("code") != DUPLICATE_KEY for e in errors):
                raise
            lost = {int(e["index"]) for e in errors}
        return [e.key for i, e in enumerate(entries) if i not in lost]

    async def _drop_claims(self, project_id: str, user_id: str, flush_id: str) -> None:
        """The fences of a flush whose entries have moved on (their claim counters too)."""
        await self._claims.delete_many(
            {"project_id": project_id, "user_id": user_id, "flush_id": flush_id}
        )

    async def claim(
        self, project_id: str, user_id: str, entries: list[WaitingEntry], flush_id: str
    ) -> list[Blob]:
        """Marks the entries processing by `flush_id` (those whose claim fence it wins) and
        returns the ones it holds. Call after the flush's record is written, so a crash in
        between leaves entries that the record names and recovery releases."""
        if not entries:
            return []
        won = set(await self._win_claims(project_id, user_id, entries, flush_id))
        # A fence applies only while the entry's counter is still the one it was read with:
        # a fence dropped after its flush moved on and then won again by a late claimer
        # changes nothing, since the counter has moved past it.
        by_count: dict[int, list[str]] = {}
        for entry in entries:
            if entry.key in won:
                by_count.setdefault(entry.claims, []).append(entry.key)
        applied = 0
        for claims, keys in by_count.items():
            result = await self._blobs.update_many(
                self._of_user(
                    project_id,
                    user_id,
                    _id={"$in": keys},
                    **{
                        "buffer.status": {
                            "$in": [BufferStatus.IDLE.value, BufferStatus.FAILED.value]
                        },
                        "buffer.claims": {"$in": [0, None]} if claims == 0 else claims,
                    },
                ),
                {
                    "$set": {
                        "buffer.status": BufferStatus.PROCESSING.value,
                        "buffer.flush_id": flush_id,
                        "buffer.updated_at": utcnow(),
                    },
                    "$inc": {"buffer.attempts": 1, "buffer.claims": 1},
                },
            )
            applied += result.modified_count
        if not won:
            return []
        if applied == len(won):  # the usual case: every fence won was applied
            now = utcnow()
            return [
                replace(
                    e.blob,
                    buffer=replace(e.blob.buffer, status=BufferStatus.PROCESSING, updated_at=now)
                    if e.blob.buffer
                    else None,
                )
                for e in entries
                if e.key in won
            ]
        return await self._of_flush(project_id, user_id, flush_id)

    async def processing_flush_ids(self, project_id: str, user_id: str) -> set[str]:
        cursor = self._blobs.find(
            self._of_user(project_id, user_id, **{"buffer.status": BufferStatus.PROCESSING.value}),
            projection={"buffer.flush_id": 1},
        )
        return {doc["buffer"]["flush_id"] async for doc in cursor if doc["buffer"].get("flush_id")}

    async def _of_flush(self, project_id: str, user_id: str, flush_id: str) -> list[Blob]:
        cursor = self._blobs.find(
            self._of_user(project_id, user_id, **{"buffer.flush_id": flush_id})
        ).sort([("created_at", ASCENDING), ("_id", ASCENDING)])
        return [_to_blob(doc) async for doc in cursor]

    def _processing(self, project_id: str, user_id: str, flush_id: str) -> Document:
        return self._of_user(
            project_id,
            user_id,
            **{"buffer.flush_id": flush_id, "buffer.status": BufferStatus.PROCESSING.value},
        )

    async def settle(
        self,
        project_id: str,
        user_id: str,
        flush_id: str,
        status: BufferStatus,
        *,
        error: str | None = None,
        delete: bool = False,
    ) -> None:
        """Ends a flush's entries in `status` (done or failed); done chats may be deleted.
        Failed entries stay due: a later flush retries them."""
        selector = self._processing(project_id, user_id, flush_id)
        if delete:
            # Three independent writes, sent at once: a claim fence dropped early can only be
            # won again by a claimer whose entry counter has moved on (see `claim`).
            await asyncio.gather(
                self._blobs.update_many(
                    {**selector, _KEYED: True},
                    {
                        "$set": {
                            _TOMBSTONE: True,
                            "blob_data": {},
                            "fields": None,
                            "buffer.status": BufferStatus.DONE.value,
                            "buffer.updated_at": utcnow(),
                        },
                        "$unset": {DUE: ""},
                    },
                ),
                self._blobs.delete_many({**selector, _KEYED: {"$ne": True}}),
                self._drop_claims(project_id, user_id, flush_id),
            )
            return
        update: Document = {
            "$set": {
                "buffer.status": status.value,
                "buffer.error": error,
                "buffer.updated_at": utcnow(),
            }
        }
        if status is BufferStatus.DONE:
            update["$unset"] = {DUE: ""}
        await self._blobs.update_many(selector, update)
        await self._drop_claims(project_id, user_id, flush_id)

    async def _skip_unapplied_claims(self, project_id: str, user_id: str, flush_id: str) -> None:
        """Fences the flush won but never applied (it died, or was cancelled, in between)
        would keep their entries from ever being claimed again: move those entries' counters
        past them. Conditional on the counter the fence was won at, so a claim that does land
        after all (a slow, not dead, flush) wins the race or changes nothing."""
        fences = await self._claims.find(
            {"project_id": project_id, "user_id": user_id, "flush_id": flush_id}
        ).to_list()
        for fence in fences:
            key, _, number = fence["_id"].rpartition(":c")
            claims = int(number)
            before = {"$in": [0, None]} if claims == 1 else claims - 1
            await self._blobs.update_one(
                self._of_user(project_id, user_id, _id=key, **{"buffer.claims": before}),
                {"$set": {"buffer.claims": claims}},
            )

    async def release(self, project_id: str, user_id: str, flush_id: str) -> None:
        """Puts the entries of an abandoned flush back to idle."""
        await self._skip_unapplied_claims(project_id, user_id, flush_id)
        await self._blobs.update_many(
            self._processing(project_id, user_id, flush_id),
            {
                "$set": {
                    "buffer.status": BufferStatus.IDLE.value,
                    "buffer.flush_id": None,
                    "buffer.updated_at": utcnow(),
                },
                "$inc": {"buffer.attempts": -1},
            },
        )
        await self._drop_claims(project_id, user_id, flush_id)

    async def pending(self, max_attempts: int) -> dict[tuple[str, str, str], BufferSummary]:
        """Every (project, user, type) with entries still to apply."""
        cursor = self._blobs.find(
            {
                DUE: DUE_BUFFER,
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
                ],
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
