"""Resolves a Bearer token to the project it belongs to.

The root token (ACCESS_TOKEN) names the root project. Project keys look like
`sk-<project_id>-<secret>`; only a SHA-256 of the whole key is stored (keys are random and
long, so a slow hash adds nothing), and comparisons run in constant time.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets

from memobase_server.domain.errors import Unauthenticated
from memobase_server.domain.models import ROOT_PROJECT_ID, Principal, ProjectStatus
from memobase_server.storage.ports import KeyEntry, ProjectKeyCache, ProjectRepo

_PROJECT_KEY = re.compile(r"^sk-(?P<project>[A-Za-z0-9_]{1,64})-(?P<secret>[0-9a-f]{32,128})$")
MISSING_TOKEN = "Provide a valid Bearer token in the Authorization header"


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def new_project_key(project_id: str) -> str:
    return f"sk-{project_id}-{secrets.token_hex(24)}"


def bearer_token(authorization: str | None) -> str:
    if not authorization or not authorization.startswith("Bearer "):
        raise Unauthenticated(MISSING_TOKEN)
    token = authorization[len("Bearer ") :].strip()
    if not token:
        raise Unauthenticated(MISSING_TOKEN)
    return token


class Authenticator:
    def __init__(self, root_token: str, projects: ProjectRepo, cache: ProjectKeyCache) -> None:
        if not root_token:
            raise ValueError("a root token is required")
        self._root = root_token.encode()
        self._projects = projects
        self._cache = cache

    async def authenticate(self, authorization: str | None) -> Principal:
        token = bearer_token(authorization)
        if hmac.compare_digest(token.encode(), self._root):
            return Principal(ROOT_PROJECT_ID)
        match = _PROJECT_KEY.match(token)
        if match is None:
            raise Unauthenticated("Invalid token")
        project_id = match["project"]
        version, entry = await self._cache.get(project_id)
        if entry is None:
            project = await self._projects.get(project_id)
            entry = (
                KeyEntry(True, project.secret_hash, project.status)
                if project is not None
                else KeyEntry(False)
            )
            await self._cache.put(project_id, version, entry)
        # One answer for an unknown project, a revoked key and a wrong secret: a caller learns
        # nothing about which project ids exist.
        if (
            entry.status is not ProjectStatus.ACTIVE
            or entry.secret_hash is None
            or not hmac.compare_digest(hash_key(token), entry.secret_hash)
        ):
            raise Unauthenticated("Invalid token")
        return Principal(project_id)
