"""Usage records on MongoDB: one document per project and day, `_id` = `<project>:<day>`,
with model tokens in total and per pipeline step, and insert-call counters."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date

from pymongo.errors import DuplicateKeyError

from memobase_server.domain.flush_plan import StepUsage
from memobase_server.storage.mongo.database import USAGE, MongoDatabase


@dataclass(frozen=True, slots=True)
class DayUsage:
    """One project's counters for one day; a day without a record reads all zero."""

    inserts: int = 0
    successful_inserts: int = 0
    input_tokens: int = 0
    output_tokens: int = 0


def _day_key(project_id: str, day: date) -> str:
    return f"{project_id}:{day.isoformat()}"


class MongoUsageRepo:
    def __init__(self, db: MongoDatabase) -> None:
        self._usage = db.collection(USAGE)

    async def add_tokens(self, project_id: str, day: date, steps: Sequence[StepUsage]) -> None:
        if not steps:
            return
        increments: dict[str, int] = {}
        for step in steps:
            for name, value in (
                ("input_tokens", step.prompt_tokens),
                ("output_tokens", step.completion_tokens),
            ):
                increments[name] = increments.get(name, 0) + value
                key = f"steps.{step.step}.{name}"
                increments[key] = increments.get(key, 0) + value
            increments[f"steps.{step.step}.calls"] = (
                increments.get(f"steps.{step.step}.calls", 0) + 1
            )
        await self._increment(project_id, day, increments)

    async def day(self, project_id: str, day: date) -> dict[str, object]:
        doc = await self._usage.find_one({"_id": _day_key(project_id, day)})
        return dict(doc) if doc else {}

    async def add_inserts(self, project_id: str, day: date, inserts: int, successes: int) -> None:
        """Adds insert-call counters (`insert`, `insert_success`) to the project's day."""
        await self._increment(project_id, day, {"insert": inserts, "insert_success": successes})

    async def _increment(self, project_id: str, day: date, increments: dict[str, int]) -> None:
        update = {
            "$inc": increments,
            "$setOnInsert": {"project_id": project_id, "date": day.isoformat()},
        }
        try:
            await self._usage.update_one({"_id": _day_key(project_id, day)}, update, upsert=True)
        except DuplicateKeyError:
            # Two upserts created the day's document at once; the loser now finds it there.
            await self._usage.update_one({"_id": _day_key(project_id, day)}, update, upsert=True)

    async def days(self, project_id: str, days: Sequence[date]) -> dict[date, DayUsage]:
        """The counters of each of `days` that has a record (one query, keyed on `_id`)."""
        if not days:
            return {}
        wanted = {_day_key(project_id, day): day for day in days}
        cursor = self._usage.find(
            {"_id": {"$in": list(wanted)}},
            projection={"insert": 1, "insert_success": 1, "input_tokens": 1, "output_tokens": 1},
        )
        found: dict[date, DayUsage] = {}
        async for doc in cursor:
            day = wanted.get(doc["_id"])
            if day is not None:
                found[day] = DayUsage(
                    inserts=int(doc.get("insert", 0)),
                    successful_inserts=int(doc.get("insert_success", 0)),
                    input_tokens=int(doc.get("input_tokens", 0)),
                    output_tokens=int(doc.get("output_tokens", 0)),
                )
        return found
