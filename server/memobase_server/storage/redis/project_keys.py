"""ProjectKeyCache on Redis."""

from __future__ import annotations

import json

import redis.asyncio as aioredis

from memobase_server.domain.models import ProjectStatus
from memobase_server.storage.redis.keys import PROJECT_KEY_TTL_SECONDS, project_key


class RedisProjectKeyCache:
    def __init__(self, redis: aioredis.Redis, namespace: str) -> None:
        self._redis = redis
        self._namespace = namespace

    async def get(self, project_id: str) -> tuple[str | None, ProjectStatus] | None:
        raw = await self._redis.get(project_key(self._namespace, project_id))
        if raw is None:
            return None
        cached = json.loads(raw)
        return cached["hash"], ProjectStatus(cached["status"])

    async def put(self, project_id: str, secret_hash: str | None, status: ProjectStatus) -> None:
        value = json.dumps({"hash": secret_hash, "status": status.value})
        await self._redis.set(
            project_key(self._namespace, project_id), value, ex=PROJECT_KEY_TTL_SECONDS
        )

    async def drop(self, project_id: str) -> None:
        await self._redis.delete(project_key(self._namespace, project_id))
