"""The Redis connection (redis.asyncio). A blocking pool: the default pool raises past its size
instead of waiting, which load tests hit at once."""

from __future__ import annotations

import redis.asyncio as aioredis


def connect_redis(url: str, max_connections: int) -> aioredis.Redis:
    pool = aioredis.BlockingConnectionPool.from_url(
        url, max_connections=max_connections, timeout=10, decode_responses=True
    )
    return aioredis.Redis.from_pool(pool)
