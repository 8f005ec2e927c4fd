"""UserRepo on MongoDB: one document per user, `_id` = `<project>:<user>`."""

from __future__ import annotations

from datetime import datetime

from pymongo.errors import DuplicateKeyError

from memobase_server.domain.errors import AlreadyExists
from memobase_server.domain.models import JsonObject, User
from memobase_server.storage.mongo.database import USERS, Document, MongoDatabase


def user_key(project_id: str, user_id: str) -> str:
    return f"{project_id}:{user_id}"


def _to_user(doc: Document) -> User:
    return User(
        project_id=doc["project_id"],
        user_id=doc["user_id"],
        data=doc.get("data"),
        created_at=doc["created_at"],
        updated_at=doc["updated_at"],
    )


class MongoUserRepo:
    def __init__(self, db: MongoDatabase) -> None:
        self._users = db.collection(USERS)

    async def insert(self, user: User) -> None:
        try:
            await self._users.insert_one(
                {
                    "_id": user_key(user.project_id, user.user_id),
                    "project_id": user.project_id,
                    "user_id": user.user_id,
                    "data": user.data,
                    "created_at": user.created_at,
                    "updated_at": user.updated_at,
                }
            )
        except DuplicateKeyError:
            raise AlreadyExists(f"User {user.user_id} already exists") from None

    async def get(self, project_id: str, user_id: str) -> User | None:
        doc = await self._users.find_one({"_id": user_key(project_id, user_id)})
        return _to_user(doc) if doc else None

    async def exists(self, project_id: str, user_id: str) -> bool:
        doc = await self._users.find_one(
            {"_id": user_key(project_id, user_id)}, projection={"_id": 1}
        )
        return doc is not None

    async def replace_data(
        self, project_id: str, user_id: str, data: JsonObject | None, now: datetime
    ) -> bool:
        result = await self._users.update_one(
            {"_id": user_key(project_id, user_id)},
            {"$set": {"data": data, "updated_at": now}},
        )
        return result.matched_count == 1

    async def delete(self, project_id: str, user_id: str) -> bool:
        result = await self._users.delete_one({"_id": user_key(project_id, user_id)})
        return result.deleted_count == 1
