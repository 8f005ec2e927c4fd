"""The model half of a flush: chats in, a FlushPlan out. No storage is touched here.

Steps: render -> extract (facts, profile memos, tags: one call) -> merge (only the slots the
chat touches; skipped when nothing needs a decision) -> resummarize overlong slots ->
organize overfull topics -> event + gists -> gist embeddings.
"""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from dataclasses import replace
from datetime import datetime, tzinfo

from memobase_server.domain.errors import MemobaseError
from memobase_server.domain.flush_plan import FlushPlan, SlotOp, derived_id
from memobase_server.domain.models import Blob, BlobType, utcnow
from memobase_server.domain.profiles import UserProfile
from memobase_server.domain.tokens import count_tokens
from memobase_server.llm.ports import ChatModel, Embedder
from memobase_server.pipeline.apply import apply_slot_ops
from memobase_server.pipeline.render import render_blob
from memobase_server.pipeline.schemas import ExtractedFact
from memobase_server.pipeline.steps.base import StepRunner
from memobase_server.pipeline.steps.extract import Memo, extract
from memobase_server.pipeline.steps.merge import merge
from memobase_server.pipeline.steps.organize import organize
from memobase_server.pipeline.steps.resummarize import resummarize
from memobase_server.pipeline.topics import MemoryConfig

log = logging.getLogger(__name__)


def fact_line(fact: ExtractedFact) -> str:
    when = f" [{fact.when.strip()}]" if fact.when and fact.when.strip() else ""
    return f"- {fact.text.strip()}{when} // {fact.kind}"


class MemoryPipeline:
    def __init__(
        self,
        llm: ChatModel,
        embedder: Embedder | None,
        *,
        best_model: str,
        summary_model: str,
        max_subtopics: int,
        max_slot_tokens: int,
        timezone: tzinfo | None,
    ) -> None:
        self._llm = llm
        self._embedder = embedder
        self._best_model = best_model
        self._summary_model = summary_model
        self._max_subtopics = max_subtopics
        self._max_slot_tokens = max_slot_tokens
        self._timezone = timezone

    def render(self, blobs: list[Blob]) -> str:
        return "\n".join(
            render_blob(b.blob_type, b.blob_data, b.created_at, self._timezone) for b in blobs
        )

    async def compute(
        self, flush_id: str, blobs: list[Blob], profile: UserProfile, config: MemoryConfig
    ) -> FlushPlan:
        runner = StepRunner(self._llm, self._best_model, self._summary_model, config.language)
        chat = self.render(blobs)
        extraction = await extract(runner, chat, profile, config)
        if all(b.blob_type is BlobType.SUMMARY for b in blobs):
            lines = [line for line in chat.splitlines() if line.strip()]
        else:
            lines = [fact_line(f) for f in extraction.facts]
        # The gists are known once extracted: embed them while the profile steps run, so a
        # flush waits on two rounds of model calls, not three.
        embedding = asyncio.create_task(self._embed(lines))
        try:
            ops = await self._profile_ops(runner, extraction.memos, profile, config, flush_id)
        except BaseException:
            embedding.cancel()
            raise
        vectors = await embedding
        if not lines and not ops:
            return FlushPlan(flush_id, None, None, usage=tuple(runner.usage))
        return FlushPlan(
            flush_id=flush_id,
            event_id=derived_id(flush_id, "event"),
            event_tip="\n".join(lines) if lines else None,
            event_tags=extraction.tags,
            gists=tuple(lines),
            gist_vectors=vectors,
            embedding_model=self._embedder.model_name if self._embedder and vectors else None,
            slot_ops=tuple(ops),
            usage=tuple(runner.usage),
        )

    async def _profile_ops(
        self,
        runner: StepRunner,
        memos: tuple[Memo, ...],
        profile: UserProfile,
        config: MemoryConfig,
        flush_id: str,
    ) -> list[SlotOp]:
        ops = await merge(runner, memos, profile, config, flush_id)
        ops = [await self._condense(runner, op) for op in ops]
        return ops + await self._organize(runner, profile, ops, config, flush_id, utcnow())

    async def _condense(self, runner: StepRunner, op: SlotOp) -> SlotOp:
        if op.op == "delete" or count_tokens(op.content) <= self._max_slot_tokens:
            return op
        try:
            content = await resummarize(runner, op.content, self._max_slot_tokens)
        except MemobaseError as exc:
            log.warning("resummarize skipped: %s", exc)
            return op
        return replace(op, content=content)

    async def _organize(
        self,
        runner: StepRunner,
        profile: UserProfile,
        ops: list[SlotOp],
        config: MemoryConfig,
        flush_id: str,
        now: datetime,
    ) -> list[SlotOp]:
        after, _ = apply_slot_ops(profile, tuple(ops), flush_id, now)
        sizes = Counter(slot.topic for slot in after.slots)
        extra: list[SlotOp] = []
        for topic, size in sizes.items():
            if size <= self._max_subtopics:
                continue
            slots = [s for s in after.slots if s.topic == topic]
            try:
                extra += await organize(runner, topic, slots, self._max_subtopics, config, flush_id)
            except MemobaseError as exc:
                log.warning("organize of topic %r skipped: %s", topic, exc)
        return extra

    async def _embed(self, lines: list[str]) -> tuple[tuple[float, ...], ...] | None:
        if self._embedder is None or not lines:
            return None
        try:
            vectors = await self._embedder.embed(lines, "document")
        except MemobaseError as exc:
            # Gists are stored without vectors and embedded again by the indexer later.
            log.warning("gist embedding failed, will retry later: %s", exc)
            return None
        return tuple(tuple(v) for v in vectors)
