"""Recognises driver failures that mean a dependency is down, so callers get UNAVAILABLE with a
plain message instead of an internal error carrying driver text."""

from __future__ import annotations

import pymongo.errors
import redis.exceptions

from memobase_server.domain.errors import Unavailable

_DATABASE_DOWN = (
    pymongo.errors.ConnectionFailure,
    pymongo.errors.ServerSelectionTimeoutError,
    pymongo.errors.NetworkTimeout,
    pymongo.errors.WTimeoutError,
)
_CACHE_DOWN = (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError)


def as_unavailable(exc: BaseException) -> Unavailable | None:
    if isinstance(exc, _DATABASE_DOWN):
        return Unavailable("The database is unavailable; retry later")
    if isinstance(exc, _CACHE_DOWN):
        return Unavailable("Redis is unavailable; retry later")
    return None
