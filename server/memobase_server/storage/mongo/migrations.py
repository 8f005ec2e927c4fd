"""One-time upgrades of stored documents, run at start-up. The database records the layout it
holds (`schema` collection); each step is idempotent, so processes that start together and
both run a step do no harm."""

from __future__ import annotations

import logging

from memobase_server.domain.flush_plan import UNFINISHED
from memobase_server.domain.models import BufferStatus
from memobase_server.storage.mongo.database import (
    BLOBS,
    DUE,
    DUE_BUFFER,
    DUE_FLUSH,
    DUE_INDEX,
    EVENT_GISTS,
    FLUSHES,
    GIST_VECTORS,
    SCHEMA,
    MongoDatabase,
)
from memobase_server.storage.mongo.events import pack_vector
from memobase_server.storage.mongo.query_audit import allow_scan

log = logging.getLogger(__name__)

SCHEMA_ID = "memobase"
LAYOUT = 2
"""1: gists carry their vectors and an `indexed` flag; nothing carries `due`.
2: `due` marks what background passes visit; vectors live in `gist_vectors`."""


async def _due_markers(db: MongoDatabase) -> None:
    waiting = [BufferStatus.IDLE.value, BufferStatus.PROCESSING.value, BufferStatus.FAILED.value]
    await db.collection(BLOBS).update_many(
        {"buffer.status": {"$in": waiting}, DUE: {"$exists": False}},
        {"$set": {DUE: DUE_BUFFER}},
    )
    await db.collection(FLUSHES).update_many(
        {"state": {"$in": [s.value for s in UNFINISHED]}, DUE: {"$exists": False}},
        {"$set": {DUE: DUE_FLUSH}},
    )


async def _vectors_apart(db: MongoDatabase) -> None:
    gists = db.collection(EVENT_GISTS)
    vectors = db.collection(GIST_VECTORS)
    async for doc in gists.find({"vector": {"$exists": True}}):
        if doc["vector"] is not None:
            await vectors.replace_one(
                {"_id": doc["_id"]},
                {
                    "_id": doc["_id"],
                    "project_id": doc["project_id"],
                    "user_id": doc["user_id"],
                    "event_id": doc["event_id"],
                    "vector": pack_vector(doc["vector"]),
                    "embedding_model": doc.get("embedding_model"),
                },
                upsert=True,
            )
        update: dict[str, object] = {"$unset": {"vector": "", "embedding_model": "", "indexed": ""}}
        if not doc.get("indexed", False):
            update["$set"] = {DUE: DUE_INDEX}
        await gists.update_one({"_id": doc["_id"]}, update)


async def upgrade(db: MongoDatabase) -> None:
    schema = db.collection(SCHEMA)
    stored = await schema.find_one({"_id": SCHEMA_ID})
    layout = int(stored["layout"]) if stored else 1
    if layout >= LAYOUT:
        return
    log.info("upgrading stored documents from layout %d to %d", layout, LAYOUT)
    with allow_scan("start-up upgrade"):
        await _due_markers(db)
        await _vectors_apart(db)
    await schema.replace_one({"_id": SCHEMA_ID}, {"_id": SCHEMA_ID, "layout": LAYOUT}, upsert=True)
