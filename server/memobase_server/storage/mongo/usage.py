"""Usage records on MongoDB: one document per project and day, `_id` = `<project>:<day>`,
with model tokens in total and per pipeline step."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date

from memobase_server.domain.flush_plan import StepUsage
from memobase_server.storage.mongo.database import USAGE, MongoDatabase


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
        await self._usage.update_one(
            {"_id": f"{project_id}:{day.isoformat()}"},
            {
                "$inc": increments,
                "$setOnInsert": {"project_id": project_id, "date": day.isoformat()},
            },
            upsert=True,
        )

    async def day(self, project_id: str, day: date) -> dict[str, object]:
        doc = await self._usage.find_one({"_id": f"{project_id}:{day.isoformat()}"})
        return dict(doc) if doc else {}
