"""Project administration with the root token: create projects, list them, rotate and revoke
their keys."""

from __future__ import annotations

import contextlib
import secrets

from memobase_server.domain.errors import AlreadyExists, NotFound, PermissionDenied
from memobase_server.domain.ids import check_project_id
from memobase_server.domain.models import (
    ROOT_PROJECT_ID,
    Principal,
    Project,
    ProjectStatus,
    utcnow,
)
from memobase_server.services.auth import hash_key, new_project_key
from memobase_server.storage.ports import ProjectKeyCache, ProjectRepo


def _require_root(principal: Principal) -> None:
    if not principal.is_root:
        raise PermissionDenied("Only the root token can manage projects")


class Projects:
    def __init__(self, projects: ProjectRepo, key_cache: ProjectKeyCache) -> None:
        self._projects = projects
        self._key_cache = key_cache

    async def ensure_root(self) -> None:
        with contextlib.suppress(AlreadyExists):
            await self._projects.insert(
                Project(ROOT_PROJECT_ID, None, ProjectStatus.ACTIVE, None, utcnow())
            )

    async def create(self, principal: Principal, project_id: str | None) -> tuple[str, str]:
        _require_root(principal)
        project_id = check_project_id(project_id) if project_id else f"p{secrets.token_hex(8)}"
        key = new_project_key(project_id)
        await self._projects.insert(
            Project(project_id, hash_key(key), ProjectStatus.ACTIVE, None, utcnow())
        )
        await self._key_cache.changed(project_id)  # it may be cached as unknown
        return project_id, key

    async def list(self, principal: Principal) -> list[Project]:
        _require_root(principal)
        return [p for p in await self._projects.list() if p.project_id != ROOT_PROJECT_ID]

    async def rotate_key(self, principal: Principal, project_id: str) -> str:
        _require_root(principal)
        key = new_project_key(project_id)
        await self._set_secret(project_id, hash_key(key), ProjectStatus.ACTIVE)
        return key

    async def revoke_key(self, principal: Principal, project_id: str) -> None:
        _require_root(principal)
        await self._set_secret(project_id, None, ProjectStatus.REVOKED)

    async def _set_secret(
        self, project_id: str, secret_hash: str | None, status: ProjectStatus
    ) -> None:
        if project_id == ROOT_PROJECT_ID or not await self._projects.set_secret(
            project_id, secret_hash, status
        ):
            raise NotFound(f"Project {project_id} not found")
        await self._key_cache.changed(project_id)
