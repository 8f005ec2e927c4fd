"""The MongoDB connection: one AsyncMongoClient, majority + journaled writes, start-up indexes.

Every query selects by one of three fields, so that no request (and no background pass) reads
more than the documents it needs, on MongoDB and on FerretDB alike:
- `_id`, a composite string (`<project>:<user>[:<id>]`): keyed lookups;
- `user_id` (with `project_id`): one user's documents;
- `due`: set only on documents a background pass must still visit (buffer entries waiting for
  a flush, flush records not yet settled, gists not yet in the vector index), removed once done;
  passes select `{"due": ...}` and so read what is left to do, never a whole collection.
FerretDB's PostgreSQL handler pushes these equality filters down as `_jsonb->'f' @> v`, which
FerretDB's own btree indexes cannot serve; the local cluster (`scripts/pg_cluster.sh`) gives
every table GIN indexes on exactly these three fields. On MongoDB the indexes below serve them;
compound indexes lead with (project_id, user_id), the future shard key.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from pymongo import ASCENDING, AsyncMongoClient, WriteConcern, monitoring
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.asynchronous.database import AsyncDatabase

USERS = "users"
BLOBS = "blobs"
PROJECTS = "projects"
PROFILES = "profiles"
EVENTS = "events"
EVENT_GISTS = "event_gists"
GIST_VECTORS = "gist_vectors"
FLUSHES = "flushes"
FLUSH_FENCES = "flush_fences"
BUFFER_CLAIMS = "buffer_claims"
PROFILE_VERSIONS = "profile_versions"
USAGE = "usage"
USER_STATUS = "user_status"
SCHEMA = "schema"

DUE = "due"
# The values of `due`: which background pass still has to visit the document.
DUE_BUFFER = "buffer"  # a buffer entry waiting for (or inside) a flush, or failed
DUE_FLUSH = "flush"  # a flush record not yet committed, abandoned or failed
DUE_INDEX = "index"  # a gist not yet in the vector index

# Collections holding per-user documents; deleting a user empties them of that user.
PER_USER_COLLECTIONS = (
    BLOBS,
    PROFILES,
    EVENTS,
    EVENT_GISTS,
    GIST_VECTORS,
    FLUSHES,
    FLUSH_FENCES,
    BUFFER_CLAIMS,
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
        [("project_id", ASCENDING), ("user_id", ASCENDING), (DUE, ASCENDING)],
        [(DUE, ASCENDING)],
    ],
    PROFILES: [[("project_id", ASCENDING), ("user_id", ASCENDING)]],
    EVENTS: [[("project_id", ASCENDING), ("user_id", ASCENDING), ("created_at", ASCENDING)]],
    EVENT_GISTS: [
        [("project_id", ASCENDING), ("user_id", ASCENDING), ("event_id", ASCENDING)],
        [(DUE, ASCENDING)],
    ],
    GIST_VECTORS: [[("project_id", ASCENDING), ("user_id", ASCENDING), ("event_id", ASCENDING)]],
    FLUSHES: [
        [("project_id", ASCENDING), ("user_id", ASCENDING), (DUE, ASCENDING)],
        [(DUE, ASCENDING)],
    ],
    USER_STATUS: [[("project_id", ASCENDING), ("user_id", ASCENDING), ("type", ASCENDING)]],
    BUFFER_CLAIMS: [[("project_id", ASCENDING), ("user_id", ASCENDING), ("flush_id", ASCENDING)]],
}

Document = dict[str, Any]

DUPLICATE_KEY = 11000


class MongoDatabase:
    def __init__(
        self,
        url: str,
        database: str,
        *,
        timeout_ms: int = 10_000,
        listeners: Sequence[monitoring.CommandListener] = (),
    ) -> None:
        self._client: AsyncMongoClient[Document] = AsyncMongoClient(
            url,
            tz_aware=True,
            serverSelectionTimeoutMS=timeout_ms,
            connectTimeoutMS=timeout_ms,
            appname="memobase-server",
            event_listeners=list(listeners),
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
                # An index on `due` alone holds only the documents that carry it.
                sparse = keys == [(DUE, ASCENDING)]
                await self.collection(name).create_index(keys, sparse=sparse)

    async def close(self) -> None:
        await self._client.close()
