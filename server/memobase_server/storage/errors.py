"""Recognises driver failures that mean a dependency is down, so callers get UNAVAILABLE with a
plain message instead of an internal error carrying driver text; and the few refusals of the
database that mean the caller sent what it cannot store, so they get INVALID_ARGUMENT."""

from __future__ import annotations

import pymongo.errors
import redis.exceptions

from memobase_server.domain.errors import InvalidArgument, Unavailable

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


# PostgreSQL, under FerretDB, stores no NUL character (U+0000) in text; MongoDB does.
_NUL_REFUSED = ("SQLSTATE 22P05", "unsupported Unicode escape sequence")


def as_rejected(exc: BaseException) -> InvalidArgument | None:
    """A write the database refused because of what the request carried."""
    if isinstance(exc, pymongo.errors.OperationFailure) and any(
        marker in str(exc) for marker in _NUL_REFUSED
    ):
        return InvalidArgument("Text with NUL characters (U+0000) cannot be stored")
    return None
