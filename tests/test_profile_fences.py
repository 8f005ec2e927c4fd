"""Profile writes on the default stack: a writer that died between claiming the next version and
writing the profile does not block the profile for good; the next writer finishes that write,
then its own, and old version fences do not pile up."""

from __future__ import annotations

import uuid
from dataclasses import replace
from datetime import UTC, datetime

import pytest

from memobase_server.domain.profiles import ProfileSlot, UserProfile
from memobase_server.storage.mongo.database import PROFILE_VERSIONS, MongoDatabase
from memobase_server.storage.mongo.profiles import MongoProfileRepo, profile_document

PROJECT = "p"
WHEN = datetime(2026, 1, 2, tzinfo=UTC)


@pytest.fixture
def db(mongo_db: MongoDatabase) -> MongoDatabase:
    return mongo_db


def _with_slot(profile: UserProfile, sub_topic: str, content: str) -> UserProfile:
    slot = ProfileSlot(str(uuid.uuid4()), "interest", sub_topic, content, WHEN, WHEN)
    return UserProfile(
        profile.project_id,
        profile.user_id,
        slots=(*profile.slots, slot),
        version=profile.version,
        applied_flushes=profile.applied_flushes,
    )


async def _died_after_the_fence(repo: MongoProfileRepo, profile: UserProfile) -> None:
    """What a writer leaves when it dies between its two writes: the fence, not the profile."""
    dead = replace(profile, applied_flushes=("dead-flush",))
    assert await repo.claim_version(profile_document(dead, profile.version + 1), profile.version)


@pytest.mark.parametrize("existing", [False, True], ids=["first-write", "later-write"])
async def test_a_write_that_died_after_its_fence_is_finished_by_the_next_writer(
    db: MongoDatabase, existing: bool
) -> None:
    repo = MongoProfileRepo(db)
    user = str(uuid.uuid4())
    profile = await repo.load(PROJECT, user)
    if existing:
        assert await repo.save(_with_slot(profile, "music", "jazz"), profile.version)
        profile = await repo.load(PROJECT, user)
    await _died_after_the_fence(repo, _with_slot(profile, "sport", "tennis"))

    # The next writer read the profile before the dead write: it loses the race for the
    # version, finishes the dead writer's write, and succeeds on its next attempt.
    mine = _with_slot(profile, "food", "ramen")
    assert not await repo.save(mine, profile.version)
    finished = await repo.load(PROJECT, user)
    assert finished.version == profile.version + 1
    assert "dead-flush" in finished.applied_flushes
    assert await repo.save(_with_slot(finished, "food", "ramen"), finished.version)

    final = await repo.load(PROJECT, user)
    assert {s.sub_topic for s in final.slots} == {"sport", "food"} | (
        {"music"} if existing else set()
    )
    # Only the newest fence is kept.
    fences = await db.collection(PROFILE_VERSIONS).find({"user_id": user}).to_list()
    assert [f["_id"] for f in fences] == [f"{PROJECT}:{user}:v{final.version}"]
