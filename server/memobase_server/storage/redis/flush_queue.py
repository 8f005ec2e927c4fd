"""The flush queue: a Redis Stream with one consumer group. Delivery is at least once: a job
stays pending until acknowledged, and jobs of a dead worker are reclaimed by the others."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from typing import Any

import redis.asyncio as aioredis
from redis.exceptions import ResponseError

from memobase_server.storage.redis import keys


@dataclass(frozen=True, slots=True)
class FlushJob:
    project_id: str
    user_id: str
    blob_type: str
    reason: str


def _decode(fields: dict[str, str]) -> FlushJob | None:
    try:
        return FlushJob(**json.loads(fields["job"]))
    except (KeyError, TypeError, ValueError):
        return None  # a malformed entry is acknowledged and dropped by the worker


class RedisFlushQueue:
    def __init__(self, redis: aioredis.Redis, namespace: str) -> None:
        self._redis = redis
        self._namespace = namespace
        self._stream = keys.flush_stream(namespace)

    async def ensure_group(self) -> None:
        try:
            await self._redis.xgroup_create(self._stream, keys.FLUSH_GROUP, id="0", mkstream=True)
        except ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise

    def _pending_key(self, job: FlushJob) -> str:
        return keys.flush_pending(self._namespace, job.project_id, job.user_id, job.blob_type)

    async def enqueue(self, job: FlushJob) -> bool:
        """Adds the job unless one for the same user and type is already waiting."""
        fresh = await self._redis.set(
            self._pending_key(job), "1", nx=True, ex=keys.FLUSH_PENDING_TTL_SECONDS
        )
        if not fresh:
            return False
        await self._redis.xadd(self._stream, {"job": json.dumps(asdict(job))})
        return True

    async def started(self, job: FlushJob) -> None:
        """From now on a new trigger queues a new job: this one may miss later inserts."""
        await self._redis.delete(self._pending_key(job))

    async def read(
        self, consumer: str, *, count: int, block_ms: int
    ) -> list[tuple[str, FlushJob | None]]:
        try:
            reply: Any = await self._redis.xreadgroup(
                keys.FLUSH_GROUP, consumer, {self._stream: ">"}, count=count, block=block_ms
            )
        except ResponseError as exc:
            # Redis was wiped (stream and group gone): recreate them; the reconciler re-queues
            # whatever was waiting.
            if "NOGROUP" not in str(exc):
                raise
            await self.ensure_group()
            return []
        return [
            (msg_id, _decode(fields)) for _, messages in reply or [] for msg_id, fields in messages
        ]

    async def reclaim(
        self, consumer: str, *, min_idle_ms: int, count: int
    ) -> list[tuple[str, FlushJob | None]]:
        """Takes over jobs another consumer read but did not acknowledge for `min_idle_ms`."""
        try:
            reply: Any = await self._redis.xautoclaim(
                self._stream, keys.FLUSH_GROUP, consumer, min_idle_ms, start_id="0-0", count=count
            )
        except ResponseError as exc:
            if "NOGROUP" not in str(exc):
                raise
            await self.ensure_group()
            return []
        messages = reply[1] if reply else []
        return [(msg_id, _decode(fields)) for msg_id, fields in messages if fields]

    async def touch(self, consumer: str, msg_ids: list[str]) -> None:
        """Marks jobs this consumer is still working on as fresh, so that a flush that runs
        longer than the reclaim time is not taken over while its worker is alive."""
        if not msg_ids:
            return
        ids: list[Any] = list(msg_ids)
        try:
            await self._redis.xclaim(self._stream, keys.FLUSH_GROUP, consumer, 0, ids, justid=True)
        except ResponseError as exc:
            if "NOGROUP" not in str(exc):
                raise

    async def ack(self, msg_id: str) -> None:
        await self._redis.xack(self._stream, keys.FLUSH_GROUP, msg_id)
        await self._redis.xdel(self._stream, msg_id)

    async def depth(self) -> int:
        return int(await self._redis.xlen(self._stream))
