"""Per-user status records (the role-play plots so far), newest read first."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pymongo import DESCENDING

from memobase_server.storage.mongo.database import USER_STATUS, MongoDatabase


class MongoUserStatusRepo:
    def __init__(self, db: MongoDatabase) -> None:
        self._status = db.collection(USER_STATUS)

    async def add(
        self,
        project_id: str,
        user_id: str,
        status_id: str,
        kind: str,
        attributes: dict[str, Any],
        now: datetime,
    ) -> None:
        await self._status.insert_one(
            {
                "_id": f"{project_id}:{user_id}:{status_id}",
                "project_id": project_id,
                "user_id": user_id,
                "type": kind,
                "attributes": attributes,
                "created_at": now,
            }
        )

    async def recent(
        self, project_id: str, user_id: str, kind: str, limit: int
    ) -> list[dict[str, Any]]:
        cursor = (
            self._status.find({"project_id": project_id, "user_id": user_id, "type": kind})
            .sort([("created_at", DESCENDING)])
            .limit(limit)
        )
        return [doc["attributes"] async for doc in cursor]
