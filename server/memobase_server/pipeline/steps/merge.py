"""Step "merge": decides how new memos change existing slots (and validates new ones).

Only the slots a flush touches are sent, with their current content: the rest of the
profile never reaches the model. New slots that need no validation skip the call.
"""

from __future__ import annotations

from dataclasses import dataclass

from memobase_server.domain.flush_plan import SlotOp, derived_id
from memobase_server.domain.profiles import UserProfile
from memobase_server.pipeline.schemas import MergeResult
from memobase_server.pipeline.steps.base import StepRunner
from memobase_server.pipeline.steps.extract import Memo
from memobase_server.pipeline.topics import MemoryConfig


@dataclass(frozen=True, slots=True)
class _Item:
    memo: Memo
    slot_id: str
    current: str
    is_new: bool
    rule: str | None


def _items(
    memos: tuple[Memo, ...], profile: UserProfile, config: MemoryConfig, flush_id: str
) -> tuple[list[_Item], list[SlotOp]]:
    """Memos needing a decision, and the adds that need none."""
    to_decide: list[_Item] = []
    direct: list[SlotOp] = []
    for memo in memos:
        spec = config.sub_topic(memo.topic, memo.sub_topic)
        rule = spec.update_description if spec else None
        slot = profile.find(memo.topic, memo.sub_topic)
        if slot is not None:
            to_decide.append(_Item(memo, slot.id, slot.content, False, rule))
            continue
        slot_id = derived_id(flush_id, f"slot:{memo.topic}:{memo.sub_topic}")
        if config.validate_mode or (spec is not None and spec.validate_value):
            to_decide.append(_Item(memo, slot_id, "", True, rule))
        else:
            direct.append(
                SlotOp("add", slot_id, memo.topic, memo.sub_topic, memo.memo, delta=memo.memo)
            )
    return to_decide, direct


def build_request(items: list[_Item]) -> str:
    lines = []
    for number, item in enumerate(items, start=1):
        lines.append(f"{number}. {item.memo.topic}::{item.memo.sub_topic}")
        lines.append(f"current: {item.current}")
        lines.append(f"new: {item.memo.memo}")
        if item.rule:
            lines.append(f"rule: {item.rule}")
    return "\n".join(lines)


def _op(item: _Item, action: str, content: str) -> SlotOp | None:
    memo = item.memo
    if action == "abort":
        return None
    if action == "append":
        text = f"{item.current}; {memo.memo}" if item.current else memo.memo
    else:
        text = content.strip() or memo.memo
    if item.is_new:
        return SlotOp("add", item.slot_id, memo.topic, memo.sub_topic, text, delta=memo.memo)
    if text == item.current:
        return None
    return SlotOp("update", item.slot_id, memo.topic, memo.sub_topic, text, delta=memo.memo)


async def merge(
    runner: StepRunner,
    memos: tuple[Memo, ...],
    profile: UserProfile,
    config: MemoryConfig,
    flush_id: str,
) -> list[SlotOp]:
    items, ops = _items(memos, profile, config, flush_id)
    if not items:
        return ops
    result = await runner.run("merge", build_request(items), MergeResult)
    decided = {d.id: d for d in result.decisions}
    for number, item in enumerate(items, start=1):
        decision = decided.get(number)
        if decision is None:  # no answer for a slot: keep what we have
            continue
        op = _op(item, decision.action, decision.content)
        if op is not None:
            ops.append(op)
    return ops
