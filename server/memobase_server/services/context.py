"""The context prompt for an LLM call: the user's profile and past events, within a token
budget. Served from the cached profile and timeline; the LLM is called only when the caller
asks for the profile picker (chats with full_profile_and_only_search_event=false)."""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import timedelta

from memobase_server.domain.context import (
    check_ratio,
    event_budget,
    fill_template,
    pack_lines,
    profile_budget,
    render_profile,
)
from memobase_server.domain.errors import InvalidArgument
from memobase_server.domain.ids import parse_uuid
from memobase_server.domain.models import JsonObject, utcnow
from memobase_server.domain.profile_selection import ProfileFilter, positive, select
from memobase_server.domain.tokens import count_tokens
from memobase_server.pipeline.prompts import system_prompt
from memobase_server.services.events import DEFAULT_DAYS, DEFAULT_THRESHOLD, Events
from memobase_server.services.profile_store import ProfileStore
from memobase_server.services.profiles import Profiles
from memobase_server.services.project_configs import ProjectConfigs
from memobase_server.services.timeline import Timeline

DEFAULT_MAX_TOKENS = 1000
DEFAULT_RATIO = 0.6
EVENT_CANDIDATES = 60
QUERY_MESSAGES = 3


@dataclass(frozen=True, slots=True)
class ContextRequest:
    rules: ProfileFilter
    max_token_size: int | None = None
    profile_event_ratio: float | None = None
    chats: tuple[JsonObject, ...] | list[JsonObject] = ()
    event_similarity_threshold: float | None = None
    time_range_in_days: int | None = None
    customize_context_prompt: str | None = None
    full_profile_and_only_search_event: bool | None = None
    fill_window_with_events: bool | None = None


class ContextBuilder:
    def __init__(
        self,
        store: ProfileStore,
        profiles: Profiles,
        timeline: Timeline,
        events: Events,
        configs: ProjectConfigs,
        *,
        semantic_events: bool,
    ) -> None:
        self._store = store
        self._profiles = profiles
        self._timeline = timeline
        self._events = events
        self._configs = configs
        self._semantic = semantic_events

    async def build(self, project_id: str, user_id: str, request: ContextRequest) -> str:
        user_id = parse_uuid(user_id, "user_id")
        max_tokens = positive(request.max_token_size, "max_token_size", allow_zero=True)
        max_tokens = DEFAULT_MAX_TOKENS if max_tokens is None else max_tokens
        ratio = check_ratio(
            DEFAULT_RATIO if request.profile_event_ratio is None else request.profile_event_ratio
        )
        days = positive(request.time_range_in_days, "time_range_in_days") or DEFAULT_DAYS
        threshold = request.event_similarity_threshold
        if threshold is not None and not -1.0 <= threshold <= 1.0:
            raise InvalidArgument("event_similarity_threshold must be between -1 and 1")
        budget = profile_budget(max_tokens, ratio)
        profile_section = await self._profile_section(project_id, user_id, request, budget)
        left = event_budget(
            max_tokens,
            budget,
            count_tokens(profile_section),
            bool(request.fill_window_with_events),
        )
        event_section = ""
        if left > 0:
            lines = await self._event_lines(project_id, user_id, request, days, threshold)
            event_section = pack_lines(lines, left)
        template = request.customize_context_prompt or system_prompt(
            "context", await self._configs.language(project_id)
        )
        return fill_template(template, profile_section, event_section) + (
            "" if request.customize_context_prompt else "\n"
        )

    async def _profile_section(
        self, project_id: str, user_id: str, request: ContextRequest, budget: int
    ) -> str:
        if budget <= 0:
            return ""
        slots = list(await self._store.slots(project_id, user_id))
        picker_wanted = request.full_profile_and_only_search_event is False
        if request.chats and picker_wanted and slots:
            slots = await self._profiles.pick(slots, request.rules, list(request.chats))
        chosen = select(slots, replace(request.rules, topk=None, max_token_size=budget))
        return render_profile(chosen)

    async def _event_lines(
        self,
        project_id: str,
        user_id: str,
        request: ContextRequest,
        days: int,
        threshold: float | None,
    ) -> list[str]:
        if request.chats and self._semantic:
            query = "\n".join(m["content"] for m in list(request.chats)[-QUERY_MESSAGES:])
            hits = await self._events.search_gists(
                project_id,
                user_id,
                query,
                EVENT_CANDIDATES,
                DEFAULT_THRESHOLD if threshold is None else threshold,
                days,
            )
            return [hit.content for hit in hits]
        since = utcnow() - timedelta(days=days)
        gists = [g for g in await self._timeline.gists(project_id, user_id) if g.created_at > since]
        gists.reverse()
        return [g.content for g in gists[:EVENT_CANDIDATES]]
