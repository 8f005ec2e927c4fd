"""Recognises driver failures that mean a dependency is down, so callers get UNAVAILABLE with a
plain message instead of an internal error carrying driver text."""

from __future__ import annotations

import pymongo.errors
import redis.exceptions

from memobase_server.domain.errors import Unavailable

_DATABASE_DOWN = (
    pymongo.errors.ConnectionFailure,
    pymongo.errors.ExecutionTimeout,
    pymongo.errors.ServerSelectionTimeoutError,
    pymongo.errors.NetworkTimeout,
    pymongo.errors.WTimeoutError,
)
_CACHE_DOWN = (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError)


def _database_busy(exc: BaseException) -> bool:
    """SQLite-backed servers (FerretDB) answer "database is locked" under write contention."""
    return isinstance(exc, pymongo.errors.OperationFailure) and "locked" in str(exc).lower()


def as_unavailable(exc: BaseException) -> Unavailable | None:
    if isinstance(exc, _DATABASE_DOWN) or _database_busy(exc):
        return Unavailable("The database is unavailable; retry later")
    if isinstance(exc, _CACHE_DOWN):
        return Unavailable("Redis is unavailable; retry later")
    return None
