"""The indexer's queue: keys of events written by any process whose gists wait for the vector
index."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import redis.asyncio as aioredis

from memobase_server.storage.redis import keys


class RedisGistQueue:
    def __init__(self, redis: aioredis.Redis, namespace: str) -> None:
        self._redis = redis
        self._key = keys.gists_to_index(namespace)

    async def push(self, event_keys: Sequence[str]) -> None:
        if event_keys:
            await self._redis.rpush(self._key, *event_keys)

    async def pop(self, count: int, wait_s: float) -> list[str]:
        """Up to `count` keys; waits up to `wait_s` for the first one."""
        first: Any = await self._redis.blpop([self._key], timeout=wait_s)
        if first is None:
            return []
        rest: Any = await self._redis.lpop(self._key, count - 1) if count > 1 else None
        return [first[1], *(rest or [])]
