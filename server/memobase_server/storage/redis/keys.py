"""Every Redis key this service writes, in one place. Keys are namespaced by the deployment's
PROJECT_ID setting; per-project keys hash-tag the project so Redis Cluster keeps them together."""

from __future__ import annotations

# A project's key hash and status, read on every call made with a project key. Written on the
# first use after a miss and dropped whenever the key changes; the TTL only bounds staleness if
# a drop is ever lost.
PROJECT_KEY_TTL_SECONDS = 3600


def project_key(namespace: str, project_id: str) -> str:
    return f"memobase:{namespace}:auth:{{{project_id}}}"
