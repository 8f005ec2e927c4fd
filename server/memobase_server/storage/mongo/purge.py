"""Deletes everything of one user across the per-user collections."""

from __future__ import annotations

import asyncio

from memobase_server.storage.mongo.database import PER_USER_COLLECTIONS, MongoDatabase


class MongoUserDataPurger:
    def __init__(self, db: MongoDatabase) -> None:
        self._collections = [db.collection(name) for name in PER_USER_COLLECTIONS]

    async def purge(self, project_id: str, user_id: str) -> None:
        selector = {"project_id": project_id, "user_id": user_id}
        await asyncio.gather(*(c.delete_many(selector) for c in self._collections))
