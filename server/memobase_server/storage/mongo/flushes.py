"""FlushRepo on MongoDB. Every transition of a flush record is a conditional update on its
current state. Leaving `claimed` (to computed, abandoned or failed) is decided first by
inserting the flush's fence document: a unique `_id` insert has exactly one winner, also on
FerretDB, whose conditional updates are not atomic under concurrency. That fence stops a worker
whose lease expired during a slow model call."""

from __future__ import annotations

from typing import Any

from pymongo import ASCENDING
from pymongo.errors import DuplicateKeyError

from memobase_server.domain.flush_plan import UNFINISHED, FlushPlan, FlushRecord, FlushState
from memobase_server.domain.models import BlobType, utcnow
from memobase_server.storage.mongo.database import (
    FLUSH_FENCES,
    FLUSHES,
    Document,
    MongoDatabase,
)


def flush_key(project_id: str, user_id: str, flush_id: str) -> str:
    return f"{project_id}:{user_id}:{flush_id}"


def _to_record(doc: Document) -> FlushRecord:
    plan = doc.get("plan")
    return FlushRecord(
        project_id=doc["project_id"],
        user_id=doc["user_id"],
        flush_id=doc["flush_id"],
        blob_type=BlobType(doc["blob_type"]),
        state=FlushState(doc["state"]),
        blob_ids=tuple(doc["blob_ids"]),
        created_at=doc["created_at"],
        plan=FlushPlan.from_document(plan) if plan else None,
        error=doc.get("error"),
    )


class MongoFlushRepo:
    def __init__(self, db: MongoDatabase) -> None:
        self._flushes = db.collection(FLUSHES)
        self._fences = db.collection(FLUSH_FENCES)

    async def insert(self, record: FlushRecord) -> None:
        await self._flushes.insert_one(
            {
                "_id": flush_key(record.project_id, record.user_id, record.flush_id),
                "project_id": record.project_id,
                "user_id": record.user_id,
                "flush_id": record.flush_id,
                "blob_type": record.blob_type.value,
                "state": record.state.value,
                "blob_ids": list(record.blob_ids),
                "plan": None,
                "error": None,
                "created_at": record.created_at,
                "updated_at": record.created_at,
            }
        )

    async def _win_fence(self, record: FlushRecord, to: FlushState) -> bool:
        try:
            await self._fences.insert_one(
                {
                    "_id": flush_key(record.project_id, record.user_id, record.flush_id),
                    "project_id": record.project_id,
                    "user_id": record.user_id,
                    "outcome": to.value,
                }
            )
        except DuplicateKeyError:
            return False
        return True

    async def transition(
        self,
        record: FlushRecord,
        to: FlushState,
        *,
        expected: tuple[FlushState, ...],
        plan: FlushPlan | None = None,
        error: str | None = None,
    ) -> bool:
        """Moves the record to `to` if it is in one of `expected`; False if it was not."""
        if FlushState.CLAIMED in expected and not await self._win_fence(record, to):
            return False
        changes: dict[str, Any] = {"state": to.value, "updated_at": utcnow()}
        if plan is not None:
            changes["plan"] = plan.to_document()
        if to is FlushState.COMMITTED:
            # The plan (vectors included) is only needed to resume a commit: once committed it
            # would only slow down every later scan of the records.
            changes["plan"] = None
        if error is not None:
            changes["error"] = error
        result = await self._flushes.update_one(
            {
                "_id": flush_key(record.project_id, record.user_id, record.flush_id),
                "state": {"$in": [s.value for s in expected]},
            },
            {"$set": changes},
        )
        return result.modified_count == 1

    async def settle_orphan(self, record: FlushRecord) -> bool:
        """A record still `claimed` whose fence was taken by a worker that died before moving
        it on: abandon it. The update is conditional, so a slow (but alive) winner that moves
        it first keeps it, and this answers False."""
        result = await self._flushes.update_one(
            {
                "_id": flush_key(record.project_id, record.user_id, record.flush_id),
                "state": FlushState.CLAIMED.value,
            },
            {"$set": {"state": FlushState.ABANDONED.value, "updated_at": utcnow()}},
        )
        return result.modified_count == 1

    async def unfinished(self, project_id: str, user_id: str) -> list[FlushRecord]:
        cursor = self._flushes.find(
            {
                "project_id": project_id,
                "user_id": user_id,
                "state": {"$in": [s.value for s in UNFINISHED]},
            }
        ).sort([("created_at", ASCENDING)])
        return [_to_record(doc) async for doc in cursor]

    async def get(self, project_id: str, user_id: str, flush_id: str) -> FlushRecord | None:
        doc = await self._flushes.find_one({"_id": flush_key(project_id, user_id, flush_id)})
        return _to_record(doc) if doc else None
