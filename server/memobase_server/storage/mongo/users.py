"""UserRepo on MongoDB: one document per user, `_id` = `<project>:<user>`; and the project's
users listing, with each user's profile-slot and event counts."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from pymongo.errors import DuplicateKeyError

from memobase_server.domain.errors import AlreadyExists
from memobase_server.domain.models import JsonObject, User
from memobase_server.storage.mongo.database import (
    EVENTS,
    PROFILES,
    USERS,
    Document,
    MongoDatabase,
)
from memobase_server.storage.mongo.json_text import from_text, to_text
from memobase_server.storage.mongo.query_audit import allow_scan

UserSortKey = Literal["updated_at", "profile_count", "event_count"]


@dataclass(frozen=True, slots=True)
class ListedUser:
    user: User
    profile_count: int
    event_count: int


def user_key(project_id: str, user_id: str) -> str:
    return f"{project_id}:{user_id}"


def _to_user(doc: Document) -> User:
    return User(
        project_id=doc["project_id"],
        user_id=doc["user_id"],
        data=from_text(doc.get("data")),
        created_at=doc["created_at"],
        updated_at=doc["updated_at"],
    )


class MongoUserRepo:
    def __init__(self, db: MongoDatabase) -> None:
        self._users = db.collection(USERS)
        self._profiles = db.collection(PROFILES)
        self._events = db.collection(EVENTS)

    async def insert(self, user: User) -> None:
        try:
            await self._users.insert_one(
                {
                    "_id": user_key(user.project_id, user.user_id),
                    "project_id": user.project_id,
                    "user_id": user.user_id,
                    "data": to_text(user.data),
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
            {"$set": {"data": to_text(data), "updated_at": now}},
        )
        return result.matched_count == 1

    async def delete(self, project_id: str, user_id: str) -> bool:
        result = await self._users.delete_one({"_id": user_key(project_id, user_id)})
        return result.deleted_count == 1

    async def list_project_users(
        self,
        project_id: str,
        *,
        search: str,
        order_by: UserSortKey,
        descending: bool,
        offset: int,
        limit: int,
    ) -> tuple[list[ListedUser], int]:
        """One page of the project's users whose id contains `search` (plain text, any case),
        and how many match in all.

        Cost: one pass over the project's users (ids and times only); the counts that order
        the listing are read for every matching user (a pass over the project's profiles or
        events), the other counts and the users' data only for the page, by key or by user.
        On MongoDB the (project_id, ...) indexes serve the passes.
        """
        needle = search.casefold()
        with allow_scan("users listing"):
            everyone = await self._users.find(
                {"project_id": project_id}, projection={"user_id": 1, "updated_at": 1}
            ).to_list()
        rows = [
            (doc["user_id"], doc["updated_at"])
            for doc in everyone
            if needle in doc["user_id"].casefold()
        ]
        profile_counts: dict[str, int] | None = None
        event_counts: dict[str, int] | None = None
        if order_by == "updated_at":
            rows.sort(key=lambda row: (row[1], row[0]), reverse=descending)
        else:
            if order_by == "profile_count":
                keys = profile_counts = await self._profile_counts(project_id, None)
            else:
                keys = event_counts = await self._event_counts(project_id, None)
            rows.sort(key=lambda row: (keys.get(row[0], 0), row[1], row[0]), reverse=descending)
        page = [user_id for user_id, _ in rows[offset : offset + limit]]
        if not page:
            return [], len(rows)
        if profile_counts is None:
            profile_counts = await self._profile_counts(project_id, page)
        if event_counts is None:
            event_counts = await self._event_counts(project_id, page)
        users = await self._get_many(project_id, page)
        listed = [
            ListedUser(users[u], profile_counts.get(u, 0), event_counts.get(u, 0))
            for u in page
            if u in users  # deleted since the first pass
        ]
        return listed, len(rows)

    async def _get_many(self, project_id: str, user_ids: Sequence[str]) -> dict[str, User]:
        found = await asyncio.gather(*(self.get(project_id, u) for u in user_ids))
        return {user.user_id: user for user in found if user is not None}

    async def _profile_counts(
        self, project_id: str, user_ids: Sequence[str] | None
    ) -> dict[str, int]:
        """Profile slots per user (only the slots' ids travel): every user of the project, or
        a page of them, one keyed read each."""
        projection = {"user_id": 1, "slots.id": 1}
        if user_ids is None:
            with allow_scan("users listing"):
                every = await self._profiles.find(
                    {"project_id": project_id}, projection=projection
                ).to_list()
            return {doc["user_id"]: len(doc.get("slots") or ()) for doc in every}
        docs = await asyncio.gather(
            *(
                self._profiles.find_one({"_id": user_key(project_id, u)}, projection=projection)
                for u in user_ids
            )
        )
        return {doc["user_id"]: len(doc.get("slots") or ()) for doc in docs if doc}

    async def _event_counts(
        self, project_id: str, user_ids: Sequence[str] | None
    ) -> dict[str, int]:
        """Events per user (only the user ids travel): every user of the project, or a page of
        them, one query of the user's events each."""
        if user_ids is None:
            with allow_scan("users listing"):
                events = await self._events.find(
                    {"project_id": project_id}, projection={"_id": 0, "user_id": 1}
                ).to_list()
            return dict(Counter(doc["user_id"] for doc in events))

        async def count(user_id: str) -> int:
            cursor = self._events.find(
                {"project_id": project_id, "user_id": user_id}, projection={"_id": 1}
            )
            return len([doc async for doc in cursor])

        return dict(zip(user_ids, await asyncio.gather(*map(count, user_ids)), strict=True))
