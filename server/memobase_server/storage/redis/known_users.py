"""Which users exist, cached in Redis for the insert path. A miss (or Redis down) falls back
to MongoDB, the source of truth."""

from __future__ import annotations

import logging

import redis.asyncio as aioredis

from memobase_server.storage.redis import keys

log = logging.getLogger(__name__)


class RedisKnownUsers:
    def __init__(self, redis: aioredis.Redis, namespace: str) -> None:
        self._redis = redis
        self._namespace = namespace

    async def known(self, project_id: str, user_id: str) -> bool:
        try:
            return bool(
                await self._redis.exists(keys.user_known(self._namespace, project_id, user_id))
            )
        except Exception as exc:
            log.warning("known-users cache unavailable: %r", exc)
            return False

    async def remember(self, project_id: str, user_id: str) -> None:
        try:
            await self._redis.set(
                keys.user_known(self._namespace, project_id, user_id),
                "1",
                ex=keys.USER_KNOWN_TTL_SECONDS,
            )
        except Exception as exc:
            log.warning("known-users cache not updated: %r", exc)

    async def forget(self, project_id: str, user_id: str) -> None:
        """Raises if Redis is down: a deleted user must not stay known."""
        await self._redis.delete(keys.user_known(self._namespace, project_id, user_id))
