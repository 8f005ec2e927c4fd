"""Profile reads and hand edits. Reads are served from the cached profile, never through the
LLM unless the caller sends chats for the LLM picker."""

from __future__ import annotations

import logging
import uuid
from dataclasses import replace

from memobase_server.domain.errors import InvalidArgument, MemobaseError, NotFound
from memobase_server.domain.ids import parse_uuid
from memobase_server.domain.models import JsonObject, utcnow
from memobase_server.domain.profile_selection import ProfileFilter, select
from memobase_server.domain.profiles import ProfileSlot, UserProfile
from memobase_server.llm.ports import ChatModel
from memobase_server.pipeline.steps.base import StepRunner
from memobase_server.pipeline.steps.pick import pick
from memobase_server.services.profile_store import ProfileStore
from memobase_server.services.users import Users

log = logging.getLogger(__name__)
MAX_CONTENT_CHARS = 20_000


def _checked_text(value: str, name: str) -> str:
    if not value.strip():
        raise InvalidArgument(f"Invalid profile attributes: {name} must be a non-empty string")
    if len(value) > MAX_CONTENT_CHARS:
        raise InvalidArgument(f"{name} is longer than {MAX_CONTENT_CHARS} characters")
    if "\x00" in value:
        raise InvalidArgument(f"Invalid profile attributes: {name} must not contain NUL characters")
    return value


class Profiles:
    def __init__(
        self,
        store: ProfileStore,
        users: Users,
        llm: ChatModel | None,
        *,
        summary_model: str,
        language: str,
    ) -> None:
        self._store = store
        self._users = users
        self._llm = llm
        self._summary_model = summary_model
        self._language = language

    async def get(
        self, project_id: str, user_id: str, rules: ProfileFilter, chats: list[JsonObject]
    ) -> list[ProfileSlot]:
        """Reads of unknown users are empty, as upstream's are."""
        user_id = parse_uuid(user_id, "user_id")
        slots: list[ProfileSlot] = list(await self._store.slots(project_id, user_id))
        if chats and slots:
            slots = await self.pick(slots, rules, chats)
        return select(slots, rules)

    async def pick(
        self, slots: list[ProfileSlot], rules: ProfileFilter, chats: list[JsonObject]
    ) -> list[ProfileSlot]:
        """The slots the LLM finds relevant to the chat; all of them if it cannot say."""
        if self._llm is None:
            return slots
        candidates = [s for s in slots if not rules.only_topics or s.topic in rules.only_topics]
        runner = StepRunner(self._llm, self._summary_model, self._summary_model, self._language)
        try:
            picked = await pick(runner, candidates, chats)
        except MemobaseError as exc:
            log.warning("profile picker failed, keeping every slot: %s", exc)
            return slots
        return picked or slots

    async def add(
        self, project_id: str, user_id: str, content: str, topic: str, sub_topic: str
    ) -> str:
        user_id = parse_uuid(user_id, "user_id")
        content = _checked_text(content, "content")
        topic, sub_topic = _checked_text(topic, "topic"), _checked_text(sub_topic, "sub_topic")
        await self._users.require(project_id, user_id)
        slot_id = str(uuid.uuid4())

        async def change(profile: UserProfile) -> UserProfile:
            now = utcnow()
            slot = ProfileSlot(slot_id, topic, sub_topic, content, now, now)
            return profile.with_slots((*profile.slots, slot))

        await self._store.update(project_id, user_id, change)
        return slot_id

    async def update(
        self,
        project_id: str,
        user_id: str,
        slot_id: str,
        content: str,
        topic: str | None,
        sub_topic: str | None,
    ) -> None:
        user_id, slot_id = parse_uuid(user_id, "user_id"), parse_uuid(slot_id, "profile_id")
        content = _checked_text(content, "content")
        if topic is not None:
            topic = _checked_text(topic, "topic")
        if sub_topic is not None:
            sub_topic = _checked_text(sub_topic, "sub_topic")

        async def change(profile: UserProfile) -> UserProfile:
            current = profile.by_id(slot_id)
            if current is None:
                raise NotFound(f"Profile {slot_id} not found")
            updated = replace(
                current,
                content=content,
                topic=topic or current.topic,
                sub_topic=sub_topic or current.sub_topic,
                updated_at=utcnow(),
            )
            return profile.with_slots(
                tuple(updated if s.id == slot_id else s for s in profile.slots)
            )

        await self._store.update(project_id, user_id, change)

    async def delete(self, project_id: str, user_id: str, slot_id: str) -> None:
        user_id, slot_id = parse_uuid(user_id, "user_id"), parse_uuid(slot_id, "profile_id")

        async def change(profile: UserProfile) -> UserProfile:
            if profile.by_id(slot_id) is None:
                raise NotFound(f"Profile {slot_id} not found")
            return profile.with_slots(tuple(s for s in profile.slots if s.id != slot_id))

        await self._store.update(project_id, user_id, change)
