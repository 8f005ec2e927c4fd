"""FlushRepo on MongoDB. Leaving `claimed` (to computed, abandoned or failed) is decided by
inserting the flush's fence document, which carries the decision itself (the outcome, and the
plan or the error): a unique `_id` insert has exactly one winner, also on FerretDB, whose
conditional updates are not atomic under concurrency. The record then follows its fence;
whoever finds a record still `claimed` behind a taken fence (its winner died, or is slow)
rolls it forward to the fence's outcome, which is exactly what the winner does, so the two
can race harmlessly. The fence stops a worker whose lease expired during a slow model call."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from pymongo import ASCENDING
from pymongo.errors import DuplicateKeyError

from memobase_server.domain.flush_plan import UNFINISHED, FlushPlan, FlushRecord, FlushState
from memobase_server.domain.models import BlobType, utcnow
from memobase_server.storage.mongo.database import (
    DUE,
    DUE_FLUSH,
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
                DUE: DUE_FLUSH,
            }
        )

    async def _win_fence(
        self, record: FlushRecord, to: FlushState, changes: dict[str, Any]
    ) -> bool:
        try:
            await self._fences.insert_one(
                {
                    "_id": flush_key(record.project_id, record.user_id, record.flush_id),
                    "project_id": record.project_id,
                    "user_id": record.user_id,
                    "outcome": to.value,
                    "plan": changes.get("plan"),
                    "error": changes.get("error"),
                }
            )
        except DuplicateKeyError:
            return False
        return True

    async def _set(
        self, record: FlushRecord, expected: tuple[FlushState, ...], changes: dict[str, Any]
    ) -> bool:
        update: dict[str, Any] = {"$set": changes}
        if FlushState(changes["state"]) not in UNFINISHED:
            update["$unset"] = {DUE: ""}
        result = await self._flushes.update_one(
            {
                "_id": flush_key(record.project_id, record.user_id, record.flush_id),
                "state": {"$in": [s.value for s in expected]},
            },
            update,
        )
        return result.modified_count == 1

    async def transition(
        self,
        record: FlushRecord,
        to: FlushState,
        *,
        expected: tuple[FlushState, ...],
        plan: FlushPlan | None = None,
        error: str | None = None,
    ) -> bool:
        """Moves the record to `to` if it is in one of `expected`; False if it was not. Out of
        `claimed`, True means this caller won the decision (the record follows)."""
        changes: dict[str, Any] = {"state": to.value, "updated_at": utcnow()}
        if error is not None:
            changes["error"] = error
        if FlushState.CLAIMED in expected:
            # The plan lives in the fence only: written once, read back only to resume.
            decision = {**changes, "plan": plan.to_document() if plan is not None else None}
            if not await self._win_fence(record, to, decision):
                return False
            await self._set(record, expected, changes)
            return True
        moved = await self._set(record, expected, changes)
        if to is FlushState.COMMITTED:
            # The plan (vectors included) is only needed to resume a commit.
            await self._fences.update_one(
                {"_id": flush_key(record.project_id, record.user_id, record.flush_id)},
                {"$set": {"plan": None}},
            )
        return moved

    async def follow_fence(self, record: FlushRecord) -> FlushRecord | None:
        """A record still `claimed` whose fence is taken: moves it to the fence's outcome
        (with the fence's plan or error) and returns it as moved; None if no fence exists."""
        fence = await self._fences.find_one(
            {"_id": flush_key(record.project_id, record.user_id, record.flush_id)}
        )
        if fence is None:
            return None
        to = FlushState(fence["outcome"])
        changes: dict[str, Any] = {"state": to.value, "updated_at": utcnow()}
        if fence.get("error") is not None:
            changes["error"] = fence["error"]
        await self._set(record, (FlushState.CLAIMED,), changes)
        plan = fence.get("plan")
        return replace(
            record,
            state=to,
            plan=FlushPlan.from_document(plan) if plan else None,
            error=fence.get("error"),
        )

    async def narrow(self, record: FlushRecord, blob_ids: tuple[str, ...]) -> FlushRecord:
        """After a claim that won only some of the record's chats: the record names those."""
        await self._flushes.update_one(
            {"_id": flush_key(record.project_id, record.user_id, record.flush_id)},
            {"$set": {"blob_ids": list(blob_ids)}},
        )
        return replace(record, blob_ids=blob_ids)

    async def unfinished(self, project_id: str, user_id: str) -> list[FlushRecord]:
        cursor = self._flushes.find(
            {
                "project_id": project_id,
                "user_id": user_id,
                DUE: DUE_FLUSH,
                "state": {"$in": [s.value for s in UNFINISHED]},
            }
        ).sort([("created_at", ASCENDING)])
        records = [_to_record(doc) async for doc in cursor]
        return [await self._with_plan(r) for r in records]

    async def _with_plan(self, record: FlushRecord) -> FlushRecord:
        """A computed record with its plan, which its fence holds (records written by older
        versions hold it themselves)."""
        if record.state is not FlushState.COMPUTED or record.plan is not None:
            return record
        fence = await self._fences.find_one(
            {"_id": flush_key(record.project_id, record.user_id, record.flush_id)},
            projection={"plan": 1},
        )
        plan = fence.get("plan") if fence else None
        return replace(record, plan=FlushPlan.from_document(plan)) if plan else record

    async def get(self, project_id: str, user_id: str, flush_id: str) -> FlushRecord | None:
        doc = await self._flushes.find_one({"_id": flush_key(project_id, user_id, flush_id)})
        return _to_record(doc) if doc else None
