"""The versioned read caches on a real redis-server: a lost version counter (evicted, expired,
wiped) never makes an old cached value current again, and writers that store what they wrote
are safe against other writers."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import pytest
import redis.asyncio as aioredis

from memobase_server.storage.redis import keys
from memobase_server.storage.redis.read_cache import RedisReadCache

TTL_S = 60


@pytest.fixture
async def redis(redis_url: str) -> AsyncIterator[aioredis.Redis]:
    client = aioredis.Redis.from_url(redis_url, decode_responses=True)
    yield client
    await client.aclose()


NAMESPACE = f"cache-{uuid.uuid4().hex[:8]}"


@pytest.fixture
def cache(redis: aioredis.Redis) -> RedisReadCache:
    return RedisReadCache(redis, NAMESPACE, "profile", TTL_S)


def _version_key(user: str) -> str:
    return keys.read_version(NAMESPACE, "profile", "p", user)


async def test_a_lost_counter_never_matches_a_value_cached_before(
    cache: RedisReadCache, redis: aioredis.Redis
) -> None:
    user = str(uuid.uuid4())
    await cache.put("p", user, await cache.bump("p", user), ["old"])
    assert (await cache.get("p", user))[1] == ["old"]

    await redis.delete(_version_key(user))  # evicted, or expired
    version = await cache.bump("p", user)  # a writer's bump after writing "new"
    assert await cache.get("p", user) == (version, None)  # counting from 0 would serve "old"

    await redis.delete(_version_key(user))
    version, cached = await cache.get("p", user)  # a reader first: it starts a new epoch too
    assert cached is None
    await cache.put("p", user, version, ["loaded"])
    assert await cache.get("p", user) == (version, ["loaded"])


async def test_counters_expire_after_the_values(
    cache: RedisReadCache, redis: aioredis.Redis
) -> None:
    user = str(uuid.uuid4())
    await cache.get("p", user)
    assert TTL_S * 1000 < await redis.pttl(_version_key(user)) <= 2 * TTL_S * 1000
    await cache.bump("p", user)
    assert TTL_S * 1000 < await redis.pttl(_version_key(user)) <= 2 * TTL_S * 1000


async def test_amend_stores_the_change_only_over_the_current_value(
    cache: RedisReadCache,
) -> None:
    user = str(uuid.uuid4())
    assert not await cache.amend("p", user, lambda cached: [*cached, 2])  # nothing cached
    version, _ = await cache.get("p", user)
    await cache.put("p", user, version, [1])
    assert await cache.amend("p", user, lambda cached: [*cached, 2])
    assert (await cache.get("p", user))[1] == [1, 2]

    await cache.bump("p", user)  # another writer, whose value was not stored
    assert not await cache.amend("p", user, lambda cached: [*cached, 3])
    assert (await cache.get("p", user))[1] is None  # left for the read path to fill
