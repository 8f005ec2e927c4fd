"""Each project's parsed profile configuration, cached briefly in process: reads (context
language) and flushes need it on every call, and it changes rarely."""

from __future__ import annotations

import time

from memobase_server.config.settings import Settings
from memobase_server.domain.profile_config import ProfileConfig, parse_profile_config
from memobase_server.pipeline.topics import MemoryConfig, memory_config
from memobase_server.storage.ports import ProjectRepo

# Other processes see a changed configuration within this many seconds.
CACHE_SECONDS = 5.0


class ProjectConfigs:
    def __init__(self, settings: Settings, projects: ProjectRepo) -> None:
        self._settings = settings
        self._projects = projects
        self._cache: dict[str, tuple[float, ProfileConfig]] = {}

    async def profile_config(self, project_id: str) -> ProfileConfig:
        now = time.monotonic()
        cached = self._cache.get(project_id)
        if cached is not None and now - cached[0] < CACHE_SECONDS:
            return cached[1]
        project = await self._projects.get(project_id)
        parsed = parse_profile_config(project.profile_config if project else None)
        self._cache[project_id] = (now, parsed)
        return parsed

    async def memory_config(self, project_id: str) -> MemoryConfig:
        return memory_config(self._settings, await self.profile_config(project_id))

    async def language(self, project_id: str) -> str:
        return (await self.profile_config(project_id)).language or self._settings.language

    def forget(self, project_id: str) -> None:
        self._cache.pop(project_id, None)
