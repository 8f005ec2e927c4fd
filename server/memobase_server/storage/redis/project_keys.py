"""ProjectKeyCache on Redis: a versioned read cache (`read_cache.py`), so a revoke or rotation
that lands while an authentication is loading the project is never undone by that load."""

from __future__ import annotations

import redis.asyncio as aioredis

from memobase_server.domain.models import ProjectStatus
from memobase_server.storage.ports import KeyEntry
from memobase_server.storage.redis.keys import PROJECT_KEY_TTL_SECONDS
from memobase_server.storage.redis.read_cache import RedisReadCache

_ANY_USER = "-"  # the read cache is keyed by project and user; keys belong to the project


class RedisProjectKeyCache:
    def __init__(self, redis: aioredis.Redis, namespace: str) -> None:
        self._cache = RedisReadCache(redis, namespace, "project-key", PROJECT_KEY_TTL_SECONDS)

    async def get(self, project_id: str) -> tuple[int, KeyEntry | None]:
        version, cached = await self._cache.get(project_id, _ANY_USER)
        if cached is None:
            return version, None
        status = cached.get("status")
        return version, KeyEntry(
            exists=bool(cached["exists"]),
            secret_hash=cached.get("hash"),
            status=ProjectStatus(status) if status else None,
        )

    async def put(self, project_id: str, version: int, entry: KeyEntry) -> None:
        value = {
            "exists": entry.exists,
            "hash": entry.secret_hash,
            "status": entry.status.value if entry.status else None,
        }
        await self._cache.put(project_id, _ANY_USER, version, value)

    async def changed(self, project_id: str) -> None:
        await self._cache.bump(project_id, _ANY_USER)
