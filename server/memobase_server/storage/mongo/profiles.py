"""ProfileRepo on MongoDB: a user's whole profile in one document, `_id` = `<project>:<user>`,
written with optimistic concurrency on its `version`. Each new version is claimed first by
inserting `<project>:<user>:v<version>`: a unique insert has one winner, also on FerretDB,
where racing conditional updates can both succeed. The fence holds the document its winner is
about to write, so a writer that loses the race can finish the winner's write if the winner
died in between; once written, the fence before it is deleted."""

from __future__ import annotations

from pymongo.errors import DuplicateKeyError

from memobase_server.domain.models import utcnow
from memobase_server.domain.profiles import ProfileSlot, UserProfile
from memobase_server.storage.mongo.database import (
    PROFILE_VERSIONS,
    PROFILES,
    Document,
    MongoDatabase,
)
from memobase_server.storage.mongo.users import user_key


def _slot_doc(slot: ProfileSlot) -> Document:
    return {
        "id": slot.id,
        "topic": slot.topic,
        "sub_topic": slot.sub_topic,
        "content": slot.content,
        "update_hits": slot.update_hits,
        "created_at": slot.created_at,
        "updated_at": slot.updated_at,
    }


def _to_slot(doc: Document) -> ProfileSlot:
    return ProfileSlot(
        id=doc["id"],
        topic=doc["topic"],
        sub_topic=doc["sub_topic"],
        content=doc["content"],
        created_at=doc["created_at"],
        updated_at=doc["updated_at"],
        update_hits=doc.get("update_hits"),
    )


def profile_document(profile: UserProfile, version: int) -> Document:
    return {
        "_id": user_key(profile.project_id, profile.user_id),
        "project_id": profile.project_id,
        "user_id": profile.user_id,
        "version": version,
        "slots": [_slot_doc(s) for s in profile.slots],
        "applied_flushes": list(profile.applied_flushes),
        "updated_at": utcnow(),
    }


def _fence_id(key: str, version: int) -> str:
    return f"{key}:v{version}"


class MongoProfileRepo:
    def __init__(self, db: MongoDatabase) -> None:
        self._profiles = db.collection(PROFILES)
        self._versions = db.collection(PROFILE_VERSIONS)

    async def load(self, project_id: str, user_id: str) -> UserProfile:
        doc = await self._profiles.find_one({"_id": user_key(project_id, user_id)})
        if doc is None:
            return UserProfile(project_id, user_id)
        return UserProfile(
            project_id=project_id,
            user_id=user_id,
            slots=tuple(_to_slot(s) for s in doc.get("slots", [])),
            version=doc["version"],
            applied_flushes=tuple(doc.get("applied_flushes", [])),
        )

    async def save(self, profile: UserProfile, expected_version: int) -> bool:
        """False when someone else wrote the profile since `expected_version` was read."""
        key = user_key(profile.project_id, profile.user_id)
        doc = profile_document(profile, expected_version + 1)
        if not await self.claim_version(doc, expected_version):
            await self._roll_forward(key, expected_version)
            return False
        if await self._write(doc, expected_version):
            return True
        # A writer that lost the version to us may have finished our write for us (see
        # `_roll_forward`): only our fence's document can take the profile past it.
        current = await self._profiles.find_one({"_id": key}, projection={"version": 1})
        return current is not None and current["version"] > expected_version

    async def claim_version(self, doc: Document, expected_version: int) -> bool:
        """Step one of a save: the next version's fence, holding the document to write."""
        try:
            await self._versions.insert_one(
                {
                    "_id": _fence_id(doc["_id"], expected_version + 1),
                    "project_id": doc["project_id"],
                    "user_id": doc["user_id"],
                    "profile": doc,
                }
            )
        except DuplicateKeyError:
            return False
        return True

    async def _write(self, doc: Document, expected_version: int) -> bool:
        """Step two: the profile itself, if still at `expected_version`."""
        if expected_version == 0:
            try:
                await self._profiles.insert_one(doc)
            except DuplicateKeyError:
                return False
            return True
        result = await self._profiles.replace_one(
            {"_id": doc["_id"], "version": expected_version}, doc
        )
        if result.matched_count != 1:
            return False
        # The fence before guards nothing now: the profile is past it.
        await self._versions.delete_one({"_id": _fence_id(doc["_id"], expected_version)})
        return True

    async def _roll_forward(self, key: str, expected_version: int) -> None:
        """The next version's fence is taken. If its writer died between the fence and the
        profile (or is slow), the profile is still at `expected_version`: write what the fence
        holds, as that writer would; otherwise this changes nothing. Without it, a profile
        whose writer died there could never be written again."""
        fence = await self._versions.find_one({"_id": _fence_id(key, expected_version + 1)})
        if fence is not None and fence.get("profile") is not None:
            await self._write(fence["profile"], expected_version)
