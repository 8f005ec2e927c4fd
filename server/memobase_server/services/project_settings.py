"""A project's own settings and views: its profile configuration (YAML) and its users listing."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from typing import Protocol

from memobase_server.config.settings import Settings
from memobase_server.domain.errors import InvalidArgument, NotFound
from memobase_server.domain.models import Project
from memobase_server.domain.profile_config import ProfileConfig, TopicSpec, parse_profile_config
from memobase_server.pipeline.topics import memory_config
from memobase_server.storage.mongo.users import ListedUser, UserSortKey

log = logging.getLogger(__name__)

DEFAULT_USERS_LIMIT = 10
MAX_USERS_LIMIT = 1000


class ProfileConfigStore(Protocol):
    async def get(self, project_id: str) -> Project | None: ...

    async def set_profile_config(self, project_id: str, profile_config: str | None) -> bool:
        """False when the project does not exist."""


class UserListing(Protocol):
    async def list_project_users(
        self,
        project_id: str,
        *,
        search: str,
        order_by: UserSortKey,
        descending: bool,
        offset: int,
        limit: int,
    ) -> tuple[list[ListedUser], int]: ...


def _check_topic_list(topics: Iterable[TopicSpec], where: str) -> None:
    """Names the pipeline can work with: no ':' (prompts and answers write slots as
    `topic::sub_topic`), no topic twice in a list, no sub-topic twice in a topic (the second
    would never be used)."""
    seen: set[str] = set()
    for i, topic in enumerate(topics):
        at = f"{where}[{i}]"
        if ":" in topic.name:
            raise InvalidArgument(f"profile config: {at}.topic must not contain ':'")
        if topic.name in seen:
            raise InvalidArgument(f"profile config: {at}.topic '{topic.name}' is listed twice")
        seen.add(topic.name)
        subs: set[str] = set()
        for j, sub in enumerate(topic.sub_topics):
            sub_at = f"{at}.sub_topics[{j}]"
            if ":" in sub.name:
                raise InvalidArgument(f"profile config: {sub_at} must not contain ':'")
            if sub.name in subs:
                raise InvalidArgument(f"profile config: {sub_at} '{sub.name}' is listed twice")
            subs.add(sub.name)


def validate_profile_config(settings: Settings, text: str) -> ProfileConfig:
    """Parses the YAML field by field, then builds the memory configuration a flush would use
    from it, so a config that parses but would break the pipeline is refused as well.
    Raises InvalidArgument naming the field."""
    parsed = parse_profile_config(text)
    if parsed.overwrite_user_profiles is not None:
        _check_topic_list(parsed.overwrite_user_profiles, "overwrite_user_profiles")
    if parsed.additional_user_profiles is not None:
        _check_topic_list(parsed.additional_user_profiles, "additional_user_profiles")
    try:
        config = memory_config(settings, parsed)
    except InvalidArgument:
        raise
    except Exception:
        log.exception("building the memory configuration from a profile config failed")
        raise InvalidArgument("profile config cannot be used by the memory pipeline") from None
    if not config.topics:
        raise InvalidArgument(
            "profile config: overwrite_user_profiles must list at least one topic"
        )
    return parsed


class ProjectSettings:
    """The project's profile configuration: read it, replace it after validation, reset it.
    `on_change(project_id)` runs after each stored change (to drop cached copies)."""

    def __init__(
        self,
        projects: ProfileConfigStore,
        settings: Settings,
        on_change: Callable[[str], None] | None = None,
    ) -> None:
        self._projects = projects
        self._settings = settings
        self._on_change = on_change

    async def get_profile_config(self, project_id: str) -> str:
        """The stored YAML text, "" when unset."""
        project = await self._projects.get(project_id)
        if project is None:
            raise NotFound(f"Project {project_id} not found")
        return project.profile_config or ""

    async def update_profile_config(self, project_id: str, text: str | None) -> None:
        """Stores `text` once it validates; None or "" resets to the server's defaults. An
        invalid config raises InvalidArgument and the stored one stays."""
        stored = text or None
        if stored is not None:
            validate_profile_config(self._settings, stored)
        if not await self._projects.set_profile_config(project_id, stored):
            raise NotFound(f"Project {project_id} not found")
        if self._on_change is not None:
            self._on_change(project_id)


class ProjectUsers:
    """The project's users, searched by id, ordered and paged."""

    def __init__(self, users: UserListing) -> None:
        self._users = users

    async def list(
        self,
        project_id: str,
        *,
        search: str = "",
        order_by: UserSortKey | None = None,
        descending: bool | None = None,
        limit: int | None = None,
        offset: int = 0,
    ) -> tuple[list[ListedUser], int]:
        """One page of users, and how many match `search` in all."""
        size = DEFAULT_USERS_LIMIT if limit is None else limit
        if not 1 <= size <= MAX_USERS_LIMIT:
            raise InvalidArgument(f"limit must be between 1 and {MAX_USERS_LIMIT}")
        if offset < 0:
            raise InvalidArgument("offset must be 0 or more")
        return await self._users.list_project_users(
            project_id,
            search=search,
            order_by=order_by or "updated_at",
            descending=True if descending is None else descending,
            offset=offset,
            limit=size,
        )
