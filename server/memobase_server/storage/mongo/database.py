"""The MongoDB connection: one AsyncMongoClient, majority + journaled writes, start-up indexes.

Documents carry `project_id` and composite string `_id`s (`<project>:<user>[:<id>]`), so the
hot paths are exact `_id` lookups: the only filter FerretDB pushes down, and a cheap one on
MongoDB too. Compound indexes lead with (project_id, user_id), the future shard key.
"""

from __future__ import annotations

from typing import Any

from pymongo import ASCENDING, AsyncMongoClient, WriteConcern
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.asynchronous.database import AsyncDatabase

USERS = "users"
BLOBS = "blobs"
PROJECTS = "projects"
PROFILES = "profiles"
EVENTS = "events"
EVENT_GISTS = "event_gists"
FLUSHES = "flushes"
FLUSH_FENCES = "flush_fences"
PROFILE_VERSIONS = "profile_versions"
USAGE = "usage"
USER_STATUS = "user_status"

# Collections holding per-user documents; deleting a user empties them of that user.
PER_USER_COLLECTIONS = (
    BLOBS,
    PROFILES,
    EVENTS,
    EVENT_GISTS,
    FLUSHES,
    FLUSH_FENCES,
    PROFILE_VERSIONS,
    USER_STATUS,
)

_INDEXES: dict[str, list[list[tuple[str, int]]]] = {
    USERS: [[("project_id", ASCENDING), ("updated_at", ASCENDING)]],
    BLOBS: [
        [
            ("project_id", ASCENDING),
            ("user_id", ASCENDING),
            ("blob_type", ASCENDING),
            ("created_at", ASCENDING),
        ],
        [("project_id", ASCENDING), ("user_id", ASCENDING), ("buffer.status", ASCENDING)],
        [("buffer.flush_id", ASCENDING)],
    ],
    PROFILES: [[("project_id", ASCENDING), ("user_id", ASCENDING)]],
    EVENTS: [[("project_id", ASCENDING), ("user_id", ASCENDING), ("created_at", ASCENDING)]],
    EVENT_GISTS: [
        [("project_id", ASCENDING), ("user_id", ASCENDING), ("event_id", ASCENDING)],
        [("indexed", ASCENDING)],
    ],
    FLUSHES: [[("project_id", ASCENDING), ("user_id", ASCENDING), ("state", ASCENDING)]],
    USER_STATUS: [[("project_id", ASCENDING), ("user_id", ASCENDING), ("type", ASCENDING)]],
}

Document = dict[str, Any]


class MongoDatabase:
    def __init__(self, url: str, database: str, *, timeout_ms: int = 10_000) -> None:
        self._client: AsyncMongoClient[Document] = AsyncMongoClient(
            url,
            tz_aware=True,
            serverSelectionTimeoutMS=timeout_ms,
            connectTimeoutMS=timeout_ms,
            appname="memobase-server",
        )
        self._db: AsyncDatabase[Document] = self._client.get_database(
            database, write_concern=WriteConcern(w="majority", j=True)
        )

    def collection(self, name: str) -> AsyncCollection[Document]:
        return self._db.get_collection(name)

    async def ping(self) -> None:
        await self._client.admin.command("ping")

    async def ensure_indexes(self) -> None:
        for name, indexes in _INDEXES.items():
            for keys in indexes:
                await self.collection(name).create_index(keys)

    async def close(self) -> None:
        await self._client.close()
