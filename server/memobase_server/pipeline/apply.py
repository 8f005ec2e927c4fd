"""Applies a plan's slot operations to a profile: pure, deterministic, idempotent per flush."""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime

from memobase_server.domain.flush_plan import SlotOp
from memobase_server.domain.profiles import ProfileSlot, UserProfile


@dataclass(frozen=True, slots=True)
class ProfileChanges:
    added: tuple[str, ...] = ()
    updated: tuple[str, ...] = ()
    deleted: tuple[str, ...] = ()


def apply_slot_ops(
    profile: UserProfile, ops: tuple[SlotOp, ...], flush_id: str, now: datetime
) -> tuple[UserProfile, ProfileChanges]:
    """The profile after the ops, recording the flush as applied. Ops that no longer fit (a
    slot deleted by hand since the plan was made) are skipped rather than resurrected."""
    slots = {s.id: s for s in profile.slots}
    added: list[str] = []
    updated: list[str] = []
    deleted: list[str] = []
    for op in ops:
        current = slots.get(op.slot_id)
        if op.op == "add":
            if current is None:
                slots[op.slot_id] = ProfileSlot(
                    op.slot_id, op.topic, op.sub_topic, op.content, now, now
                )
                added.append(op.slot_id)
        elif op.op == "update":
            if current is not None:
                slots[op.slot_id] = replace(
                    current,
                    content=op.content,
                    updated_at=now,
                    update_hits=(current.update_hits or 0) + 1,
                )
                updated.append(op.slot_id)
        elif current is not None:
            del slots[op.slot_id]
            if op.slot_id in added:  # added and regrouped away within the same flush
                added.remove(op.slot_id)
            else:
                deleted.append(op.slot_id)
    changes = ProfileChanges(tuple(added), tuple(updated), tuple(deleted))
    return profile.with_slots(tuple(slots.values()), flush_id), changes
