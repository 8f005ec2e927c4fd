"""Step "extract": one call reads the chat and returns facts, profile memos and tags."""

from __future__ import annotations

import difflib
from dataclasses import dataclass

from memobase_server.domain.profiles import UserProfile, normalize_name
from memobase_server.pipeline.schemas import ExtractedFact, ExtractResult
from memobase_server.pipeline.steps.base import StepRunner
from memobase_server.pipeline.topics import MemoryConfig

# Memos that say "nothing known" in so many words; dropped rather than stored.
_PLACEHOLDERS = (
    "none", "unknown", "not mentioned", "not specified", "n/a", "na", "null", "nothing",
    "no information", "无", "未知", "未提及", "没有", "不详",
)  # fmt: skip


@dataclass(frozen=True, slots=True)
class Memo:
    topic: str
    sub_topic: str
    memo: str


@dataclass(frozen=True, slots=True)
class Extraction:
    facts: tuple[ExtractedFact, ...]
    memos: tuple[Memo, ...]
    tags: tuple[tuple[str, str], ...]


def is_placeholder(text: str) -> bool:
    cleaned = text.strip().strip(".。").lower()
    return not cleaned or bool(difflib.get_close_matches(cleaned, _PLACEHOLDERS, n=1, cutoff=0.8))


def _topic_lines(config: MemoryConfig) -> str:
    lines = []
    for topic in config.topics:
        subs = ", ".join(
            f"{s.name} ({s.description})" if s.description else s.name for s in topic.sub_topics
        )
        head = f"{topic.name} ({topic.description})" if topic.description else topic.name
        lines.append(f"- {head}: {subs}")
    return "\n".join(lines)


def build_request(chat: str, profile: UserProfile, config: MemoryConfig) -> str:
    parts = ["Topics:", _topic_lines(config)]
    known = sorted({f"{s.topic}::{s.sub_topic}" for s in profile.slots if config.allows(*s.key)})
    if known:
        parts.append("Known slots: " + ", ".join(known))
    if config.strict_mode:
        parts.append("Use only the listed topics and sub-topics.")
    if config.tags:
        parts.append("Tags:")
        parts.extend(f"- {t.name}: {t.description or 'its value in the chat'}" for t in config.tags)
    if config.theme_requirement:
        parts.append(f"Focus: {config.theme_requirement}")
    parts.extend(["Chat:", chat])
    return "\n".join(parts)


def clean(result: ExtractResult, config: MemoryConfig) -> Extraction:
    """Normalised names, no placeholders, only allowed slots, one memo per slot, known tags."""
    memos: dict[tuple[str, str], list[str]] = {}
    for candidate in result.profiles:
        topic, sub_topic = normalize_name(candidate.topic), normalize_name(candidate.sub_topic)
        memo = candidate.memo.strip()
        if (
            not topic
            or not sub_topic
            or is_placeholder(memo)
            or not config.allows(topic, sub_topic)
        ):
            continue
        if memo not in memos.setdefault((topic, sub_topic), []):
            memos[(topic, sub_topic)].append(memo)
    allowed_tags = {t.name for t in config.tags}
    tags: dict[str, str] = {}
    for tag in result.tags:
        name, value = normalize_name(tag.tag), tag.value.strip()
        if name in allowed_tags and value and not is_placeholder(value):
            tags[name] = value
    facts = tuple(f for f in result.facts if f.text.strip() and not is_placeholder(f.text))
    return Extraction(
        facts=facts,
        memos=tuple(Memo(t, s, "; ".join(m)) for (t, s), m in memos.items()),
        tags=tuple(tags.items()),
    )


async def extract(
    runner: StepRunner, chat: str, profile: UserProfile, config: MemoryConfig
) -> Extraction:
    result = await runner.run("extract", build_request(chat, profile, config), ExtractResult)
    return clean(result, config)
