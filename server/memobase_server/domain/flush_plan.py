"""The outcome of a flush's model calls: everything the commit writes, and nothing it reads.

A plan is stored with its flush record before anything is written, so a flush interrupted
during its commit resumes from the plan without calling the model again. Ids inside it are
derived from the flush id, which makes every write of the commit idempotent.
"""

from __future__ import annotations

import uuid
from array import array
from dataclasses import asdict, dataclass, field, replace
from datetime import datetime
from enum import StrEnum
from typing import Any, Literal

from memobase_server.domain.models import BlobType

SlotOpKind = Literal["add", "update", "delete"]


def derived_id(flush_id: str, name: str) -> str:
    return str(uuid.uuid5(uuid.UUID(flush_id), name))


@dataclass(frozen=True, slots=True)
class SlotOp:
    op: SlotOpKind
    slot_id: str
    topic: str = ""
    sub_topic: str = ""
    content: str = ""
    # The new information behind an add or update, recorded on the event as its profile delta.
    delta: str | None = None


@dataclass(frozen=True, slots=True)
class StepUsage:
    step: str
    prompt_tokens: int
    completion_tokens: int


@dataclass(frozen=True, slots=True)
class FlushPlan:
    flush_id: str
    event_id: str | None
    event_tip: str | None
    event_tags: tuple[tuple[str, str], ...] = ()
    gists: tuple[str, ...] = ()
    gist_vectors: tuple[tuple[float, ...], ...] | None = None
    embedding_model: str | None = None
    slot_ops: tuple[SlotOp, ...] = ()
    usage: tuple[StepUsage, ...] = field(default=())

    def gist_id(self, index: int) -> str:
        return derived_id(self.flush_id, f"gist:{index}")

    def to_document(self) -> dict[str, Any]:
        """A BSON-ready form (FerretDB stores no nested arrays: vectors go as float32 bytes)."""
        doc = asdict(replace(self, gist_vectors=None))  # asdict would copy every float
        doc["event_tags"] = [{"tag": t, "value": v} for t, v in self.event_tags]
        doc["gist_vectors"] = (
            [array("f", v).tobytes() for v in self.gist_vectors]
            if self.gist_vectors is not None
            else None
        )
        return doc

    @classmethod
    def from_document(cls, doc: dict[str, Any]) -> FlushPlan:
        vectors = doc.get("gist_vectors")
        return cls(
            flush_id=doc["flush_id"],
            event_id=doc.get("event_id"),
            event_tip=doc.get("event_tip"),
            event_tags=tuple((t["tag"], t["value"]) for t in doc.get("event_tags", ())),
            gists=tuple(doc.get("gists", ())),
            gist_vectors=tuple(tuple(array("f", bytes(v))) for v in vectors)
            if vectors is not None
            else None,
            embedding_model=doc.get("embedding_model"),
            slot_ops=tuple(SlotOp(**op) for op in doc.get("slot_ops", ())),
            usage=tuple(StepUsage(**u) for u in doc.get("usage", ())),
        )

    @property
    def is_empty(self) -> bool:
        return self.event_id is None and not self.slot_ops


class FlushState(StrEnum):
    """claimed -> computed -> committed; claimed -> abandoned (lease lost) | failed."""

    CLAIMED = "claimed"
    COMPUTED = "computed"
    COMMITTED = "committed"
    ABANDONED = "abandoned"
    FAILED = "failed"


UNFINISHED = (FlushState.CLAIMED, FlushState.COMPUTED)


@dataclass(frozen=True, slots=True)
class FlushRecord:
    project_id: str
    user_id: str
    flush_id: str
    blob_type: BlobType
    state: FlushState
    blob_ids: tuple[str, ...]
    created_at: datetime
    plan: FlushPlan | None = None
    error: str | None = None
