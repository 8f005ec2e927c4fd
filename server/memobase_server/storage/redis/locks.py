"""Per-user leases in Redis: one flush per user at a time. A lease expires unless renewed, so
a dead worker's lease frees itself; correctness never rests on it alone (flush records fence
stale workers in MongoDB)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
from collections.abc import AsyncIterator

import redis.asyncio as aioredis

from memobase_server.domain.errors import Unavailable
from memobase_server.storage.redis import keys

log = logging.getLogger(__name__)

_RENEW = """
if redis.call('get', KEYS[1]) == ARGV[1] then
  return redis.call('pexpire', KEYS[1], ARGV[2])
end
return 0
"""
_RELEASE = """
if redis.call('get', KEYS[1]) == ARGV[1] then
  return redis.call('del', KEYS[1])
end
return 0
"""


MAX_POLL_SECONDS = 0.25


class Lease:
    """A held lease: `held()` asks Redis whether it is still this holder's."""

    def __init__(self, redis: aioredis.Redis, key: str, token: str) -> None:
        self._redis = redis
        self._key = key
        self._token = token

    async def held(self) -> bool:
        try:
            current = await self._redis.get(self._key)
        except Exception as exc:  # Redis down: carry on, the fences in MongoDB still hold
            log.warning("could not check the flush lease %s: %r", self._key, exc)
            return True
        return bool(current == self._token)  # the client decodes replies


class RedisUserLocks:
    def __init__(self, redis: aioredis.Redis, namespace: str, lease_s: float) -> None:
        self._redis = redis
        self._namespace = namespace
        self._lease_ms = int(lease_s * 1000)
        self._renew = redis.register_script(_RENEW)
        self._release = redis.register_script(_RELEASE)
        # Waiters in this process, woken when a lease of this process is released; waiters
        # on another process's lease poll.
        self._released: dict[str, asyncio.Event] = {}

    @contextlib.asynccontextmanager
    async def hold(self, project_id: str, user_id: str, *, wait_s: float) -> AsyncIterator[Lease]:
        """Holds the user's lease (renewed in the background) for the block; waits up to
        `wait_s` for another holder to finish, then raises Unavailable."""
        key = keys.user_lock(self._namespace, project_id, user_id)
        token = secrets.token_hex(16)
        await self._acquire(key, token, wait_s)
        renewer = asyncio.create_task(self._keep(key, token))
        try:
            yield Lease(self._redis, key, token)
        finally:
            renewer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await renewer
            try:
                await self._release(keys=[key], args=[token])
            finally:
                self._wake(key)

    def _wake(self, key: str) -> None:
        released = self._released.pop(key, None)
        if released is not None:
            released.set()

    async def _acquire(self, key: str, token: str, wait_s: float) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + wait_s
        delay = 0.02
        while not await self._redis.set(key, token, nx=True, px=self._lease_ms):
            left = deadline - loop.time()
            if left <= 0:
                self._wake(key)  # leaves nothing behind; other waiters just poll again
                raise Unavailable("Another flush of this user is running; retry later")
            released = self._released.setdefault(key, asyncio.Event())
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(released.wait(), min(delay, left))
            delay = min(delay * 2, MAX_POLL_SECONDS)

    async def _keep(self, key: str, token: str) -> None:
        while True:
            await asyncio.sleep(self._lease_ms / 3000)
            try:
                if not await self._renew(keys=[key], args=[token, self._lease_ms]):
                    log.warning("lost the flush lease %s; the flush record fences this worker", key)
                    return
            except Exception as exc:
                log.warning("could not renew the flush lease %s: %r", key, exc)
