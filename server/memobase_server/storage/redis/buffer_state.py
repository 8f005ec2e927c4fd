"""Redis counters of each user's idle buffer tokens, and the time of their last insert. Both
are caches of MongoDB: lost counters are rebuilt by the reconciler from the buffer entries."""

from __future__ import annotations

import time
from typing import Any

import redis.asyncio as aioredis

from memobase_server.storage.redis import keys

FLUSHED_COUNT_TTL_SECONDS = 86_400


def _member(project_id: str, user_id: str, blob_type: str) -> str:
    return f"{project_id}|{user_id}|{blob_type}"


class RedisBufferState:
    def __init__(self, redis: aioredis.Redis, namespace: str) -> None:
        self._redis = redis
        self._namespace = namespace
        self._last_insert = keys.buffer_last_insert(namespace)

    async def add(self, project_id: str, user_id: str, blob_type: str, tokens: int) -> int:
        """Counts an inserted entry; returns the user's idle tokens of that type."""
        key = keys.buffer_tokens(self._namespace, project_id, user_id, blob_type)
        async with self._redis.pipeline(transaction=False) as pipe:
            pipe.incrby(key, tokens)
            pipe.persist(key)  # a count of idle chats lives until their flush
            pipe.zadd(self._last_insert, {_member(project_id, user_id, blob_type): time.time()})
            total, _, _ = await pipe.execute()
        return int(total)

    async def restore(
        self, project_id: str, user_id: str, blob_type: str, tokens: int, last_insert: float
    ) -> None:
        """Resets the user's counter and idle clock to what MongoDB says."""
        key = keys.buffer_tokens(self._namespace, project_id, user_id, blob_type)
        async with self._redis.pipeline(transaction=False) as pipe:
            pipe.set(key, tokens)
            pipe.zadd(self._last_insert, {_member(project_id, user_id, blob_type): last_insert})
            await pipe.execute()

    async def tokens(self, project_id: str, user_id: str, blob_type: str) -> int | None:
        """The user's idle tokens of that type; None when not counted (expired, or wiped)."""
        raw = await self._redis.get(
            keys.buffer_tokens(self._namespace, project_id, user_id, blob_type)
        )
        return None if raw is None else int(raw)

    async def last_insert(self, project_id: str, user_id: str, blob_type: str) -> float | None:
        """When the user last inserted an entry not yet taken by a flush (epoch seconds)."""
        score = await self._redis.zscore(self._last_insert, _member(project_id, user_id, blob_type))
        return None if score is None else float(score)

    async def flushed(self, project_id: str, user_id: str, blob_type: str) -> None:
        """A flush of the user starts: it takes every idle chat, so counting starts again.
        The zero is kept for a while, so a job queued before it knows it is not needed."""
        await self._redis.set(
            keys.buffer_tokens(self._namespace, project_id, user_id, blob_type),
            0,
            ex=FLUSHED_COUNT_TTL_SECONDS,
        )
        await self._redis.zrem(self._last_insert, _member(project_id, user_id, blob_type))

    async def idle_since(self, cutoff: float, limit: int = 500) -> list[tuple[str, str, str]]:
        """Users whose last insert is older than `cutoff` (epoch seconds)."""
        members: Any = await self._redis.zrangebyscore(
            self._last_insert, 0, cutoff, start=0, num=limit
        )
        result = []
        for member in members:
            project_id, user_id, blob_type = member.split("|")
            result.append((project_id, user_id, blob_type))
        return result

    async def forget(self, project_id: str, user_id: str, blob_type: str) -> None:
        await self._redis.zrem(self._last_insert, _member(project_id, user_id, blob_type))
