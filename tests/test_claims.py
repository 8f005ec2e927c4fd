"""Claims and flush decisions on the default stack, where racing conditional updates can both
succeed: buffer entries are claimed through per-entry fences, so flushes of one user that run
at once (one of them has lost its lease) never hold the same chat; and a flush record left
`claimed` behind a decided fence is rolled forward to what the fence says."""

from __future__ import annotations

import asyncio
import uuid
from collections import Counter

import pytest

from memobase_server.domain.flush_plan import FlushPlan, FlushRecord, FlushState
from memobase_server.domain.models import Blob, BlobType, BufferEntry, BufferStatus, utcnow
from memobase_server.storage.mongo.blobs import MongoBlobRepo, MongoBufferRepo
from memobase_server.storage.mongo.database import MongoDatabase
from memobase_server.storage.mongo.flushes import MongoFlushRepo

PROJECT = "p"


@pytest.fixture
def db(mongo_db: MongoDatabase) -> MongoDatabase:
    return mongo_db


async def _chats(db: MongoDatabase, user_id: str, count: int) -> list[str]:
    blobs = MongoBlobRepo(db)
    ids = []
    for _ in range(count):
        blob_id, now = str(uuid.uuid4()), utcnow()
        await blobs.insert(
            Blob(
                project_id=PROJECT,
                user_id=user_id,
                blob_id=blob_id,
                blob_type=BlobType.CHAT,
                blob_data={"messages": [{"role": "user", "content": "hi"}]},
                fields=None,
                created_at=now,
                updated_at=now,
                buffer=BufferEntry(str(uuid.uuid4()), BufferStatus.IDLE, 10, now),
            )
        )
        ids.append(blob_id)
    return ids


async def _claim(buffer: MongoBufferRepo, user_id: str) -> tuple[str, list[str]]:
    flush_id = str(uuid.uuid4())
    batch = await buffer.next_batch(
        PROJECT, user_id, BlobType.CHAT, max_tokens=10_000, max_attempts=3
    )
    entries = batch.entries
    held = await buffer.claim(PROJECT, user_id, entries, flush_id)
    return flush_id, [b.blob_id for b in held]


async def test_flushes_claiming_at_once_never_hold_the_same_chat(db: MongoDatabase) -> None:
    buffer = MongoBufferRepo(db)
    for trial in range(5):
        user_id = f"u{trial}"
        chats = await _chats(db, user_id, 12)
        claims = await asyncio.gather(*(_claim(buffer, user_id) for _ in range(6)))
        held = Counter(blob for _, blobs in claims for blob in blobs)
        assert set(held) == set(chats), "every waiting chat is claimed by someone"
        assert max(held.values()) == 1, f"a chat held by two flushes: {held.most_common(3)}"
        for flush_id, blobs in claims:
            owned = (
                await db.collection("blobs")
                .find({"user_id": user_id, "buffer.flush_id": flush_id})
                .to_list()
            )
            assert sorted(d["blob_id"] for d in owned) == sorted(blobs)


async def test_a_late_claimer_gets_nothing_once_its_chats_moved_on(db: MongoDatabase) -> None:
    buffer = MongoBufferRepo(db)
    [chat] = await _chats(db, "late", 1)
    stale = (
        await buffer.next_batch(PROJECT, "late", BlobType.CHAT, max_tokens=100, max_attempts=3)
    ).entries
    first, held = await _claim(buffer, "late")
    assert held == [chat]
    # The first flush fails and its fences are dropped; the chat waits again as failed.
    await buffer.settle(PROJECT, "late", first, BufferStatus.FAILED, error="model down")
    assert await buffer.claim(PROJECT, "late", stale, str(uuid.uuid4())) == []
    _, again = await _claim(buffer, "late")
    assert again == [chat]


async def test_a_record_left_claimed_behind_a_decided_fence_is_rolled_forward(
    db: MongoDatabase,
) -> None:
    flushes = MongoFlushRepo(db)
    record = FlushRecord(
        PROJECT, "u", str(uuid.uuid4()), BlobType.CHAT, FlushState.CLAIMED, ("b1",), utcnow()
    )
    await flushes.insert(record)
    plan = FlushPlan(record.flush_id, str(uuid.uuid4()), "I moved to Porto", gists=("Porto",))
    assert await flushes.transition(
        record, FlushState.COMPUTED, expected=(FlushState.CLAIMED,), plan=plan
    )
    # The winner died between its fence and its record: the record still says claimed.
    await db.collection("flushes").update_one(
        {"flush_id": record.flush_id, "user_id": "u"},
        {"$set": {"state": "claimed", "plan": None, "due": "flush"}},
    )
    assert not await flushes.transition(
        record, FlushState.ABANDONED, expected=(FlushState.CLAIMED,)
    )
    moved = await flushes.follow_fence(record)
    assert moved is not None and moved.state is FlushState.COMPUTED
    assert moved.plan == plan
    [stored] = await flushes.unfinished(PROJECT, "u")
    assert stored.state is FlushState.COMPUTED and stored.plan == plan


async def test_claims_won_by_a_flush_that_died_before_applying_them_are_freed_by_recovery(
    db: MongoDatabase,
) -> None:
    buffer = MongoBufferRepo(db)
    [chat] = await _chats(db, "dead", 1)
    entries = (
        await buffer.next_batch(PROJECT, "dead", BlobType.CHAT, max_tokens=100, max_attempts=3)
    ).entries
    dead_flush = str(uuid.uuid4())
    # The dying flush got as far as its fences (as a cancelled request or a kill -9 can).
    assert await buffer._win_claims(PROJECT, "dead", entries, dead_flush) == [entries[0].key]
    assert (await _claim(buffer, "dead"))[1] == [], "its fence holds the chat back"
    await buffer.release(PROJECT, "dead", dead_flush)  # what recovery does with its record
    assert (await _claim(buffer, "dead"))[1] == [chat]
