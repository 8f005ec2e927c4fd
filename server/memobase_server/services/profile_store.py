"""Profiles as every caller sees them: MongoDB behind a versioned Redis read cache. All profile
writes (the pipeline's and the API's) go through here, so the cache can never go stale; each
write stores what it wrote in the cache, so the next read is a hit."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Any

from memobase_server.domain.errors import FailedPrecondition
from memobase_server.domain.profiles import ProfileSlot, UserProfile
from memobase_server.storage.mongo.profiles import MongoProfileRepo
from memobase_server.storage.redis.read_cache import RedisReadCache

log = logging.getLogger(__name__)

WRITE_ATTEMPTS = 8


def _encode(slot: ProfileSlot) -> dict[str, Any]:
    return {
        "id": slot.id,
        "topic": slot.topic,
        "sub_topic": slot.sub_topic,
        "content": slot.content,
        "created_at": slot.created_at.isoformat(),
        "updated_at": slot.updated_at.isoformat(),
        "update_hits": slot.update_hits,
    }


def _decode(raw: dict[str, Any]) -> ProfileSlot:
    return ProfileSlot(
        id=raw["id"],
        topic=raw["topic"],
        sub_topic=raw["sub_topic"],
        content=raw["content"],
        created_at=datetime.fromisoformat(raw["created_at"]),
        updated_at=datetime.fromisoformat(raw["updated_at"]),
        update_hits=raw.get("update_hits"),
    )


class ProfileStore:
    def __init__(self, repo: MongoProfileRepo, cache: RedisReadCache) -> None:
        self._repo = repo
        self._cache = cache

    async def slots(self, project_id: str, user_id: str) -> tuple[ProfileSlot, ...]:
        """The user's slots, from the cache when it is current (one Redis round trip)."""
        version, cached = await self._cache.get(project_id, user_id)
        if cached is not None:
            return tuple(_decode(s) for s in cached)
        profile = await self._repo.load(project_id, user_id)
        await self._cache.put(project_id, user_id, version, [_encode(s) for s in profile.slots])
        return profile.slots

    async def load(self, project_id: str, user_id: str) -> UserProfile:
        """The whole profile document, uncached: what writers start from."""
        return await self._repo.load(project_id, user_id)

    async def update(
        self,
        project_id: str,
        user_id: str,
        change: Callable[[UserProfile], Awaitable[UserProfile | None]],
        *,
        loaded: UserProfile | None = None,
    ) -> UserProfile | None:
        """Applies `change` with optimistic concurrency (re-reading on a conflict). `change`
        returns the new profile, or None to write nothing. `loaded`: the profile as the
        caller read it a moment ago, tried first (the save fails if it has changed since)."""
        for _ in range(WRITE_ATTEMPTS):
            profile = loaded or await self._repo.load(project_id, user_id)
            loaded = None
            updated = await change(profile)
            if updated is None:
                return None
            if await self._repo.save(updated, profile.version):
                # The next read is a hit, without reading back what was just written.
                version = await self._cache.bump(project_id, user_id)
                await self._cache.put(
                    project_id, user_id, version, [_encode(s) for s in updated.slots]
                )
                return updated
        raise FailedPrecondition("The profile kept changing during this write; retry later")

    async def purge(self, project_id: str, user_id: str) -> None:
        """After a user's deletion: no cached profile of theirs may be served."""
        await self._cache.bump(project_id, user_id)
