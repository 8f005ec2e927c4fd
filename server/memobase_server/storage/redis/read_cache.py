"""Versioned read caches in Redis, safe against the read-then-write race.

A reader fetches the version counter and the cached value in one round trip; a hit needs the
value's tag to equal the counter. On a miss it loads from MongoDB and stores the result tagged
with the version it saw *before* loading, so a write that landed meanwhile (and bumped the
counter) leaves that entry stale, never wrong. Writers bump the counter after writing MongoDB.
Wiping Redis loses only speed. A counter that is missing (wiped, evicted, expired) starts again
from an epoch taken from the clock (milliseconds x 1000), never from 0: a restarted counter
cannot come back to the tag of a value cached before it was lost. So counters can expire too
(after twice the values' lifetime without a write).
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from typing import Any

import redis.asyncio as aioredis

from memobase_server.storage.redis import keys

log = logging.getLogger(__name__)


# KEYS: version, value; ARGV: epoch, version lifetime (ms). The counter, started at the epoch
# when missing, and the cached value.
_GET = """
local version = redis.call('get', KEYS[1])
if not version then
  version = ARGV[1]
  redis.call('set', KEYS[1], version, 'px', ARGV[2])
end
return {version, redis.call('get', KEYS[2])}
"""
# KEYS: version; ARGV: epoch, version lifetime (ms). The counter, bumped.
_BUMP = """
if redis.call('exists', KEYS[1]) == 0 then
  redis.call('set', KEYS[1], ARGV[1])
end
local version = redis.call('incr', KEYS[1])
redis.call('pexpire', KEYS[1], ARGV[2])
return version
"""


def _epoch() -> int:
    return int(time.time() * 1000) * 1000


class RedisReadCache:
    def __init__(self, redis: aioredis.Redis, namespace: str, kind: str, ttl_s: int) -> None:
        self._redis = redis
        self._namespace = namespace
        self._kind = kind
        self._ttl_s = max(ttl_s, 1)
        self._version_ttl_ms = 2 * self._ttl_s * 1000
        self._get = redis.register_script(_GET)
        self._bump = redis.register_script(_BUMP)

    def _keys(self, project_id: str, user_id: str) -> tuple[str, str]:
        return (
            keys.read_version(self._namespace, self._kind, project_id, user_id),
            keys.read_cache(self._namespace, self._kind, project_id, user_id),
        )

    async def get(self, project_id: str, user_id: str) -> tuple[int, Any | None]:
        """The current version, and the cached value if it is of that version."""
        version_key, value_key = self._keys(project_id, user_id)
        try:
            raw_version, raw_value = await self._get(
                keys=[version_key, value_key], args=[_epoch(), self._version_ttl_ms]
            )
        except Exception as exc:
            log.warning("read cache unavailable: %r", exc)
            return -1, None
        version = int(raw_version)
        if raw_value is None:
            return version, None
        cached = json.loads(raw_value)
        if cached.get("v") != version:
            return version, None
        return version, cached["data"]

    async def put(self, project_id: str, user_id: str, version: int, data: Any) -> None:
        if version < 0:  # Redis was unreachable when the version was read
            return
        _, value_key = self._keys(project_id, user_id)
        payload = json.dumps({"v": version, "data": data}, separators=(",", ":"), default=str)
        try:
            await self._redis.set(value_key, payload, ex=self._ttl_s)
        except Exception as exc:
            log.warning("read cache not stored: %r", exc)

    async def bump(self, project_id: str, user_id: str) -> int:
        """Call after every write of the underlying data; returns the new version (-1 when
        Redis is unreachable). A writer may `put` what it wrote under that version: a write
        that lands meanwhile bumps past it."""
        version_key, _ = self._keys(project_id, user_id)
        try:
            return int(await self._bump(keys=[version_key], args=[_epoch(), self._version_ttl_ms]))
        except Exception as exc:
            # The entry then lives until its TTL: bounded staleness rather than a failed write.
            log.warning("read cache version not bumped: %r", exc)
            return -1

    async def amend(self, project_id: str, user_id: str, change: Callable[[Any], Any]) -> bool:
        """Call after a write that `change` describes (it maps the cached value to the
        written one): bumps the version and, when the cached value was current and no other
        write bumped in between, stores it changed. False: the caller refills it instead."""
        version, cached = await self.get(project_id, user_id)
        bumped = await self.bump(project_id, user_id)
        if cached is None or version < 0 or bumped != version + 1:
            return False
        await self.put(project_id, user_id, bumped, change(cached))
        return True
