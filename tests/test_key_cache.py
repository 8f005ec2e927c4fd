"""Project keys on the auth path, on the default stack (FerretDB, redis-server): a revoke that
lands while an authentication is loading the project is not undone by that load; unknown
project ids are cached too; and every refusal reads the same, so a caller cannot tell which
project ids exist."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass

import pytest
import redis.asyncio as aioredis

from memobase_server.domain.errors import Unauthenticated
from memobase_server.domain.models import ROOT_PROJECT_ID, Principal, Project
from memobase_server.services.auth import Authenticator
from memobase_server.services.projects import Projects
from memobase_server.storage.mongo.database import MongoDatabase
from memobase_server.storage.mongo.projects import MongoProjectRepo
from memobase_server.storage.redis.project_keys import RedisProjectKeyCache

ROOT = Principal(ROOT_PROJECT_ID)


class PausingRepo(MongoProjectRepo):
    """The real repository; `get` can be held after reading, to open the race window."""

    def __init__(self, db: MongoDatabase) -> None:
        super().__init__(db)
        self.gate = asyncio.Event()
        self.gate.set()
        self.read = asyncio.Event()
        self.reads = 0

    async def get(self, project_id: str) -> Project | None:
        self.reads += 1
        project = await super().get(project_id)
        self.read.set()
        await self.gate.wait()
        return project


@dataclass
class Auth:
    repo: PausingRepo
    projects: Projects
    authenticator: Authenticator


@pytest.fixture
async def auth(mongo_db: MongoDatabase, redis_url: str) -> AsyncIterator[Auth]:
    redis = aioredis.Redis.from_url(redis_url, decode_responses=True)
    cache = RedisProjectKeyCache(redis, f"keys-{uuid.uuid4().hex[:8]}")
    repo = PausingRepo(mongo_db)
    yield Auth(repo, Projects(repo, cache), Authenticator("root-token", repo, cache))
    await redis.aclose()


async def _refusal(auth: Auth, key: str) -> str:
    with pytest.raises(Unauthenticated) as refused:
        await auth.authenticator.authenticate(f"Bearer {key}")
    return refused.value.message


async def test_a_revoke_during_a_cache_fill_is_not_undone(auth: Auth) -> None:
    project_id, key = await auth.projects.create(ROOT, None)
    auth.repo.gate.clear()
    loading = asyncio.create_task(auth.authenticator.authenticate(f"Bearer {key}"))
    await auth.repo.read.wait()
    await auth.projects.revoke_key(ROOT, project_id)  # lands after the load read the project
    auth.repo.gate.set()
    assert (await loading).project_id == project_id  # it started before the revoke
    assert await _refusal(auth, key) == "Invalid token"  # served stale "active" before the fix


async def test_unknown_projects_are_cached_and_refused_like_revoked_ones(auth: Auth) -> None:
    unknown = f"sk-nosuch{uuid.uuid4().hex[:6]}-{'0' * 48}"
    first = await _refusal(auth, unknown)
    reads = auth.repo.reads
    assert await _refusal(auth, unknown) == first
    assert auth.repo.reads == reads  # the second refusal read no database

    project_id, key = await auth.projects.create(ROOT, None)
    forged = key[: key.rindex("-") + 1] + "0" * 48
    assert await _refusal(auth, forged) == first
    await auth.projects.revoke_key(ROOT, project_id)
    assert await _refusal(auth, key) == first


async def test_a_project_created_under_a_cached_unknown_id_works_at_once(auth: Auth) -> None:
    project_id = f"team{uuid.uuid4().hex[:6]}"
    await _refusal(auth, f"sk-{project_id}-{'0' * 48}")  # now cached as unknown
    _, key = await auth.projects.create(ROOT, project_id)
    assert (await auth.authenticator.authenticate(f"Bearer {key}")).project_id == project_id
