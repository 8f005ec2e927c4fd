"""Step "organize": a topic grown past `max_profile_subtopics` slots is regrouped."""

from __future__ import annotations

from memobase_server.domain.flush_plan import SlotOp, derived_id
from memobase_server.domain.profiles import ProfileSlot, normalize_name
from memobase_server.pipeline.schemas import OrganizeResult
from memobase_server.pipeline.steps.base import StepRunner
from memobase_server.pipeline.steps.extract import is_placeholder
from memobase_server.pipeline.topics import MemoryConfig


def target_count(max_subtopics: int) -> int:
    return max_subtopics // 2 + 1


def build_request(topic: str, slots: list[ProfileSlot], keep: int, config: MemoryConfig) -> str:
    spec = config.topic(topic)
    preferred = ", ".join(s.name for s in spec.sub_topics) if spec else ""
    lines = [f"Topic: {topic}", f"Keep at most {keep} sub-topics"]
    if preferred:
        lines.append(f"Preferred sub-topics: {preferred}")
    lines.extend(f"- {s.sub_topic}::{s.content}" for s in slots)
    return "\n".join(lines)


async def organize(
    runner: StepRunner,
    topic: str,
    slots: list[ProfileSlot],
    max_subtopics: int,
    config: MemoryConfig,
    flush_id: str,
) -> list[SlotOp]:
    """Delete the topic's slots and add the regrouped ones; nothing changes if the model
    returns nothing usable."""
    keep = target_count(max_subtopics)
    result = await runner.run("organize", build_request(topic, slots, keep, config), OrganizeResult)
    grouped: dict[str, list[str]] = {}
    for slot in result.slots:
        name, content = normalize_name(slot.sub_topic), slot.content.strip()
        if name and not is_placeholder(content) and content not in grouped.get(name, []):
            grouped.setdefault(name, []).append(content)
    if not grouped:
        return []
    ops = [SlotOp("delete", s.id) for s in slots]
    for name, contents in list(grouped.items())[:keep]:
        slot_id = derived_id(flush_id, f"organize:{topic}:{name}")
        ops.append(SlotOp("add", slot_id, topic, name, "; ".join(contents)))
    return ops
