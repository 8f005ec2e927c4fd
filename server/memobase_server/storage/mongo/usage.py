"""Usage records on MongoDB: model tokens (in total and per pipeline step) and insert-call
counters, per project and day."""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date

from pymongo.errors import DuplicateKeyError

from memobase_server.domain.flush_plan import StepUsage
from memobase_server.storage.mongo.database import USAGE, MongoDatabase
from memobase_server.storage.mongo.query_audit import allow_scan


@dataclass(frozen=True, slots=True)
class DayUsage:
    """One project's counters for one day; a day without a record reads all zero."""

    inserts: int = 0
    successful_inserts: int = 0
    input_tokens: int = 0
    output_tokens: int = 0


def _key(project_id: str, day: date, kind: str, writer: str) -> str:
    return f"{project_id}:{day.isoformat()}:{kind}:{writer}"


class MongoUsageRepo:
    """Usage lives in many small documents per project and day, summed when read: one per
    flush for model tokens (inserted once, so a retried commit cannot count twice) and one per
    writing process for insert counters (`$inc` by a single writer). FerretDB loses `$inc`s
    that race on one document, so no document is ever incremented by two writers at once."""

    def __init__(self, db: MongoDatabase) -> None:
        self._usage = db.collection(USAGE)

    async def add_tokens(
        self, project_id: str, day: date, steps: Sequence[StepUsage], *, record_id: str
    ) -> None:
        if not steps:
            return
        per_step: dict[str, dict[str, int]] = {}
        for step in steps:
            counts = per_step.setdefault(
                step.step, {"input_tokens": 0, "output_tokens": 0, "calls": 0}
            )
            counts["input_tokens"] += step.prompt_tokens
            counts["output_tokens"] += step.completion_tokens
            counts["calls"] += 1
        with contextlib.suppress(DuplicateKeyError):
            await self._usage.insert_one(
                {
                    "_id": _key(project_id, day, "tokens", record_id),
                    "project_id": project_id,
                    "date": day.isoformat(),
                    "input_tokens": sum(c["input_tokens"] for c in per_step.values()),
                    "output_tokens": sum(c["output_tokens"] for c in per_step.values()),
                    "steps": per_step,
                }
            )

    async def add_inserts(
        self, project_id: str, day: date, inserts: int, successes: int, *, writer: str
    ) -> None:
        """Adds insert-call counters (`insert`, `insert_success`) to this writer's document."""
        key = _key(project_id, day, "inserts", writer)
        update = {
            "$inc": {"insert": inserts, "insert_success": successes},
            "$setOnInsert": {"project_id": project_id, "date": day.isoformat()},
        }
        try:
            await self._usage.update_one({"_id": key}, update, upsert=True)
        except DuplicateKeyError:
            # The upsert raced its own earlier (unacknowledged) attempt; it exists now.
            await self._usage.update_one({"_id": key}, update, upsert=True)

    async def days(self, project_id: str, days: Sequence[date]) -> dict[date, DayUsage]:
        """The summed counters of each of `days` that has any record."""
        if not days:
            return {}
        wanted = {day.isoformat(): day for day in days}
        # Reads every usage record of the project (one per flush and writer): a project-wide
        # report, not a memory request. Per-day totals kept apart would make it keyed.
        with allow_scan("usage report"):
            docs = await self._usage.find(
                {"project_id": project_id, "date": {"$in": list(wanted)}},
                projection={
                    "date": 1,
                    "insert": 1,
                    "insert_success": 1,
                    "input_tokens": 1,
                    "output_tokens": 1,
                },
            ).to_list()
        totals: dict[date, list[int]] = {}
        for doc in docs:
            day = wanted.get(doc.get("date", ""))
            if day is None:
                continue
            sums = totals.setdefault(day, [0, 0, 0, 0])
            for i, field in enumerate(
                ("insert", "insert_success", "input_tokens", "output_tokens")
            ):
                sums[i] += int(doc.get(field, 0))
        return {day: DayUsage(*sums) for day, sums in totals.items()}
