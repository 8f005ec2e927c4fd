"""A user's profile: topic / sub-topic slots, held as one document per user."""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from datetime import datetime

# Slots the pipeline writes use normalised names; hand-added slots keep what the caller sent.
_SPACES = re.compile(r"\s+")
# How many applied flush ids a profile remembers, to make a retried commit a no-op.
APPLIED_FLUSHES_KEPT = 64


def normalize_name(name: str) -> str:
    return _SPACES.sub("_", name.strip().lower())


@dataclass(frozen=True, slots=True)
class ProfileSlot:
    id: str
    topic: str
    sub_topic: str
    content: str
    created_at: datetime
    updated_at: datetime
    update_hits: int | None = None

    @property
    def key(self) -> tuple[str, str]:
        return (self.topic, self.sub_topic)


@dataclass(frozen=True, slots=True)
class UserProfile:
    project_id: str
    user_id: str
    slots: tuple[ProfileSlot, ...] = ()
    version: int = 0
    applied_flushes: tuple[str, ...] = ()

    def find(self, topic: str, sub_topic: str) -> ProfileSlot | None:
        """The slot the pipeline writes to for a (topic, sub_topic): when hand-added slots
        duplicate one, the least recently updated."""
        matches = [s for s in self.slots if s.key == (topic, sub_topic)]
        return min(matches, key=lambda s: s.updated_at) if matches else None

    def by_id(self, slot_id: str) -> ProfileSlot | None:
        return next((s for s in self.slots if s.id == slot_id), None)

    def with_slots(
        self, slots: tuple[ProfileSlot, ...], flush_id: str | None = None
    ) -> UserProfile:
        applied = self.applied_flushes
        if flush_id is not None:
            applied = (*applied, flush_id)[-APPLIED_FLUSHES_KEPT:]
        return replace(self, slots=slots, applied_flushes=applied)
