"""ProfileRepo on MongoDB: a user's whole profile in one document, `_id` = `<project>:<user>`,
written with optimistic concurrency on its `version`. Each new version is claimed first by
inserting `<project>:<user>:v<version>`: a unique insert has one winner, also on FerretDB,
where racing conditional updates can both succeed."""

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
        doc: Document = {
            "_id": key,
            "project_id": profile.project_id,
            "user_id": profile.user_id,
            "version": expected_version + 1,
            "slots": [_slot_doc(s) for s in profile.slots],
            "applied_flushes": list(profile.applied_flushes),
            "updated_at": utcnow(),
        }
        try:
            await self._versions.insert_one(
                {
                    "_id": f"{key}:v{expected_version + 1}",
                    "project_id": profile.project_id,
                    "user_id": profile.user_id,
                }
            )
        except DuplicateKeyError:
            return False
        if expected_version == 0:
            try:
                await self._profiles.insert_one(doc)
            except DuplicateKeyError:
                return False
            return True
        result = await self._profiles.replace_one({"_id": key, "version": expected_version}, doc)
        return result.matched_count == 1
