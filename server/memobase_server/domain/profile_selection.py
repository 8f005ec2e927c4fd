"""Which profile slots a read returns, in which order: pure rules shared by GetProfile and the
context prompt.

Order: newest first; `prefer_topics` first (in the given order); `only_topics` keep just those;
per-topic caps (`topic_limits`, else `max_subtopic_size`); `topk`; then a token budget over the
rendered lines (the first slot is always kept, as upstream does).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field

from memobase_server.domain.errors import InvalidArgument
from memobase_server.domain.profiles import ProfileSlot
from memobase_server.domain.tokens import count_tokens


@dataclass(frozen=True, slots=True)
class ProfileFilter:
    topk: int | None = None
    max_token_size: int | None = None
    prefer_topics: tuple[str, ...] = ()
    only_topics: tuple[str, ...] = ()
    max_subtopic_size: int | None = None
    topic_limits: dict[str, int] = field(default_factory=dict)


def positive(value: int | None, name: str, *, allow_zero: bool = False) -> int | None:
    if value is None:
        return None
    if value < 0 or (value == 0 and not allow_zero):
        raise InvalidArgument(f"{name} must be {'0 or more' if allow_zero else 'positive'}")
    return value


def parse_topic_limits(text: str | None) -> dict[str, int]:
    """`topic_limits_json`: a JSON object of topic -> non-negative integer."""
    if not text:
        return {}
    try:
        raw = json.loads(text)
    except RecursionError:
        raise InvalidArgument(
            "Invalid JSON requests: topic_limits_json is nested too deeply"
        ) from None
    except ValueError:
        raise InvalidArgument(
            "Invalid JSON requests: topic_limits_json is not valid JSON"
        ) from None
    if not isinstance(raw, dict) or not all(
        isinstance(k, str) and isinstance(v, int) and not isinstance(v, bool) and v >= 0
        for k, v in raw.items()
    ):
        raise InvalidArgument(
            "Invalid JSON requests: topic_limits_json must map topics to non-negative integers"
        )
    return raw


def make_filter(
    *,
    topk: int | None,
    max_token_size: int | None,
    prefer_topics: Sequence[str],
    only_topics: Sequence[str],
    max_subtopic_size: int | None,
    topic_limits_json: str | None,
) -> ProfileFilter:
    return ProfileFilter(
        topk=positive(topk, "topk"),
        max_token_size=positive(max_token_size, "max_token_size", allow_zero=True),
        prefer_topics=tuple(t.strip() for t in prefer_topics if t.strip()),
        only_topics=tuple(t.strip() for t in only_topics if t.strip()),
        max_subtopic_size=positive(max_subtopic_size, "max_subtopic_size"),
        topic_limits=parse_topic_limits(topic_limits_json),
    )


def slot_line(slot: ProfileSlot) -> str:
    return f"{slot.topic}::{slot.sub_topic}: {slot.content}"


def select(slots: Sequence[ProfileSlot], rules: ProfileFilter) -> list[ProfileSlot]:
    ordered = sorted(slots, key=lambda s: (s.updated_at, s.id), reverse=True)
    if rules.prefer_topics:
        rank = {topic: i for i, topic in enumerate(rules.prefer_topics)}
        ordered.sort(key=lambda s: rank.get(s.topic, len(rank)))
    if rules.only_topics:
        wanted = set(rules.only_topics)
        ordered = [s for s in ordered if s.topic in wanted]
    if rules.topic_limits or rules.max_subtopic_size is not None:
        seen: dict[str, int] = {}
        capped = []
        for slot in ordered:
            limit = rules.topic_limits.get(slot.topic, rules.max_subtopic_size)
            seen[slot.topic] = seen.get(slot.topic, 0) + 1
            if limit is None or seen[slot.topic] <= limit:
                capped.append(slot)
        ordered = capped
    if rules.topk is not None:
        ordered = ordered[: rules.topk]
    if rules.max_token_size:
        kept: list[ProfileSlot] = []
        used = 0
        for slot in ordered:
            cost = count_tokens(slot_line(slot))
            if kept and used + cost > rules.max_token_size:
                break
            kept.append(slot)
            used += cost
        ordered = kept
    return ordered
