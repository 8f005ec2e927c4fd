"""Every Redis key this service writes, in one place. Keys are namespaced by the deployment's
PROJECT_ID setting; per-project keys hash-tag the project so Redis Cluster keeps them together."""

from __future__ import annotations

# A project's key hash and status (a versioned read cache entry, `project_keys.py`), read on
# every call made with a project key.
PROJECT_KEY_TTL_SECONDS = 3600


# Flush jobs: one stream and one consumer group for every worker of the deployment.
FLUSH_GROUP = "flush-workers"
# While a job for (user, type) waits in the stream, further triggers don't add another one.
# The marker is dropped when a worker starts the job; the TTL only frees a marker whose job
# was lost (the reconciler re-queues such users anyway).
FLUSH_PENDING_TTL_SECONDS = 900


def flush_stream(namespace: str) -> str:
    return f"memobase:{namespace}:flush:jobs"


def flush_pending(namespace: str, project_id: str, user_id: str, blob_type: str) -> str:
    return f"memobase:{namespace}:flush:pending:{{{project_id}:{user_id}}}:{blob_type}"


def user_lock(namespace: str, project_id: str, user_id: str) -> str:
    return f"memobase:{namespace}:lock:{{{project_id}:{user_id}}}"


def buffer_tokens(namespace: str, project_id: str, user_id: str, blob_type: str) -> str:
    """Tokens of the user's idle buffer entries of a type: a cache of a MongoDB sum."""
    return f"memobase:{namespace}:buffer:tokens:{{{project_id}:{user_id}}}:{blob_type}"


def buffer_last_insert(namespace: str) -> str:
    """Sorted set of `project|user|type` by the time of the last insert, for idle flushes."""
    return f"memobase:{namespace}:buffer:last_insert"


def read_cache(namespace: str, kind: str, project_id: str, user_id: str) -> str:
    """A compiled read of one user's data (profile, timeline), tagged with its version."""
    return f"memobase:{namespace}:cache:{kind}:{{{project_id}:{user_id}}}"


def read_version(namespace: str, kind: str, project_id: str, user_id: str) -> str:
    """Bumped by every write to that data; a cached read of another version is stale."""
    return f"memobase:{namespace}:cache:{kind}:version:{{{project_id}:{user_id}}}"


# A user known to exist, so an insert skips the database read. Set on create and on a read
# that found the user; deleted (before and after the database delete) when the user goes.
USER_KNOWN_TTL_SECONDS = 24 * 3600


def user_known(namespace: str, project_id: str, user_id: str) -> str:
    return f"memobase:{namespace}:user:{{{project_id}:{user_id}}}"


def gists_to_index(namespace: str) -> str:
    """Keys of gists stored in MongoDB and not yet in the vector index (the indexer's queue;
    lost entries are found again by its periodic pass over MongoDB)."""
    return f"memobase:{namespace}:gists:to_index"
