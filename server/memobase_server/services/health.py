"""Checks that the service's dependencies answer."""

from __future__ import annotations

import asyncio
import logging

import redis.asyncio as aioredis

from memobase_server.domain.errors import Unavailable
from memobase_server.storage.mongo.database import MongoDatabase

log = logging.getLogger(__name__)


class DependencyHealth:
    def __init__(self, mongo: MongoDatabase, redis: aioredis.Redis, timeout_s: float = 3.0) -> None:
        self._mongo = mongo
        self._redis = redis
        self._timeout = timeout_s

    async def check(self) -> None:
        """Raises Unavailable naming the first dependency that does not answer."""
        try:
            async with asyncio.timeout(self._timeout):
                await self._mongo.ping()
        except Exception as exc:
            log.warning("database health check failed: %r", exc)
            raise Unavailable("Database not available") from None
        try:
            async with asyncio.timeout(self._timeout):
                await self._redis.ping()
        except Exception as exc:
            log.warning("redis health check failed: %r", exc)
            raise Unavailable("Redis not available") from None
