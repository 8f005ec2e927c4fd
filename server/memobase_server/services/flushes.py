"""Flushes: turning a user's buffered chats into memory, each chat applied exactly once.

Delivery is at least once (stream + reclaim); applying is idempotent:
1. Under the user's lease, unfinished flush records of dead workers are settled first: a
   computed plan is committed, a bare claim is abandoned and its entries go back to idle.
2. Entries are claimed (idle -> processing) under a new flush id, recorded as `claimed`.
3. The model calls produce a plan; `claimed -> computed` stores it. If that transition fails,
   another worker abandoned this flush (our lease had expired): the plan is dropped.
4. The commit writes the event, the gists and the profile with ids derived from the flush id
   (a repeated write is a no-op; the profile records the flushes it applied), then settles
   the entries and moves the record to `committed`.
A crash anywhere leaves either a claim (redone from the chats) or a plan (committed again).
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace

from memobase_server.config.settings import Settings
from memobase_server.domain.errors import FailedPrecondition, InvalidArgument, MemobaseError
from memobase_server.domain.events import DeltaEntry, Event, EventGist
from memobase_server.domain.flush_plan import FlushPlan, FlushRecord, FlushState
from memobase_server.domain.ids import parse_uuid
from memobase_server.domain.models import BUFFERED_BLOB_TYPES, Blob, BlobType, BufferStatus, utcnow
from memobase_server.domain.profiles import UserProfile
from memobase_server.faults import crash_point
from memobase_server.observability.hooks import NO_OBSERVER, FlushObserver
from memobase_server.pipeline.apply import ProfileChanges, apply_slot_ops
from memobase_server.pipeline.compute import MemoryPipeline
from memobase_server.services.profile_store import ProfileStore
from memobase_server.services.project_configs import ProjectConfigs
from memobase_server.services.timeline import Timeline
from memobase_server.storage.mongo.blobs import MongoBufferRepo
from memobase_server.storage.mongo.events import MongoEventRepo, event_key
from memobase_server.storage.mongo.flushes import MongoFlushRepo
from memobase_server.storage.mongo.usage import MongoUsageRepo
from memobase_server.storage.redis.buffer_state import RedisBufferState
from memobase_server.storage.redis.flush_queue import FlushJob, RedisFlushQueue
from memobase_server.storage.redis.gist_queue import RedisGistQueue
from memobase_server.storage.redis.locks import RedisUserLocks

log = logging.getLogger(__name__)

LLM_NOT_CONFIGURED = (
    "LLM not configured: set llm_api_key (MEMOBASE_LLM_API_KEY) and, for other providers, "
    "llm_base_url. Buffered chats are kept and will be processed once it is set."
)


@dataclass(frozen=True, slots=True)
class FlushResult:
    event_id: str | None
    added: tuple[str, ...] = ()
    updated: tuple[str, ...] = ()
    deleted: tuple[str, ...] = ()


PAUSE_LIMIT = 6
"""A size-triggered flush waits at most this many pauses for the user's inserts to stop."""

IndexHandoff = Callable[[str, Sequence[EventGist]], bool]
"""Takes an event's new gists (by event key) for the vector index; False: not taken."""


def flushable_type(blob_type: BlobType) -> BlobType:
    if blob_type not in BUFFERED_BLOB_TYPES:
        raise InvalidArgument(f"Blob type {blob_type.value} is not supported for flushing")
    return blob_type


class FlushService:
    def __init__(
        self,
        *,
        settings: Settings,
        pipeline: MemoryPipeline | None,
        buffer: MongoBufferRepo,
        flushes: MongoFlushRepo,
        profiles: ProfileStore,
        events: MongoEventRepo,
        usage: MongoUsageRepo,
        configs: ProjectConfigs,
        timeline: Timeline,
        queue: RedisFlushQueue,
        locks: RedisUserLocks,
        buffer_state: RedisBufferState,
        gist_queue: RedisGistQueue,
        index_handoff: IndexHandoff | None = None,
        observer: FlushObserver = NO_OBSERVER,
    ) -> None:
        self._settings = settings
        self._pipeline = pipeline
        self._buffer = buffer
        self._flushes = flushes
        self._profiles = profiles
        self._events = events
        self._usage = usage
        self._configs = configs
        self._timeline = timeline
        self._queue = queue
        self._locks = locks
        self._buffer_state = buffer_state
        self._gist_queue = gist_queue
        self._index_handoff = index_handoff
        self._observer = observer

    async def _index(self, event: Event, gists: list[EventGist]) -> None:
        """Hands the new gists to this process's indexer, or queues their event for one."""
        key = event_key(event.project_id, event.user_id, event.event_id)
        if self._index_handoff is not None and self._index_handoff(key, gists):
            return
        try:
            await self._gist_queue.push([key])
        except Exception as exc:  # the indexer's sweep over MongoDB finds them later
            log.warning("gists not queued for the index: %r", exc)

    # --- triggers -------------------------------------------------------------------------

    async def after_insert(self, blob: Blob, *, wait: bool) -> list[FlushResult]:
        """Counts the new entry; past the size threshold, flushes (now, or queued)."""
        if blob.buffer is None:
            return []
        try:
            total = await self._buffer_state.add(
                blob.project_id, blob.user_id, blob.blob_type.value, blob.buffer.token_size
            )
        except Exception as exc:  # the reconciler rebuilds counters from MongoDB
            log.warning("buffer counter not updated: %r", exc)
            return []
        if total <= self._settings.max_chat_blob_buffer_token_size or self._pipeline is None:
            return []
        if wait:
            return await self.flush_now(blob.project_id, blob.user_id, blob.blob_type)
        try:
            await self.enqueue(blob.project_id, blob.user_id, blob.blob_type, "size")
        except Exception as exc:  # the blob is stored; the reconciler queues the flush later
            log.warning("flush not queued after insert: %r", exc)
        return []

    async def size_flush_due(self, project_id: str, user_id: str, blob_type: BlobType) -> bool:
        """For a flush queued because the user's buffer grew past its size: waits for a pause
        in the user's inserts (a burst of chats then makes one batch, not several), then
        says whether the idle chats still exceed that size. A flush that started since (a
        sync one, usually) counts from zero again. Without the count (Redis wiped): True,
        the flush finds out."""
        kind = blob_type.value
        pause = self._settings.flush_insert_pause_seconds
        try:
            waited = 0.0
            while waited < pause * PAUSE_LIMIT:
                last = await self._buffer_state.last_insert(project_id, user_id, kind)
                quiet = pause if last is None else time.time() - last
                if quiet >= pause:
                    break
                await asyncio.sleep(pause - quiet)
                waited += pause - quiet
            tokens = await self._buffer_state.tokens(project_id, user_id, kind)
        except Exception as exc:
            log.warning("buffer counter unavailable: %r", exc)
            return True
        return tokens is None or tokens > self._settings.max_chat_blob_buffer_token_size

    async def request(
        self, project_id: str, user_id: str, blob_type: BlobType, *, wait: bool
    ) -> list[FlushResult]:
        user_id = parse_uuid(user_id, "user_id")
        flushable_type(blob_type)
        if wait:
            return await self.flush_now(project_id, user_id, blob_type)
        if self._pipeline is None:
            raise FailedPrecondition(LLM_NOT_CONFIGURED)
        await self.enqueue(project_id, user_id, blob_type, "manual")
        return []

    async def enqueue(
        self, project_id: str, user_id: str, blob_type: BlobType, reason: str
    ) -> None:
        await self._queue.enqueue(FlushJob(project_id, user_id, blob_type.value, reason))

    # --- running ----------------------------------------------------------------------------

    async def flush_now(
        self, project_id: str, user_id: str, blob_type: BlobType, *, retry_failed: bool = True
    ) -> list[FlushResult]:
        """Flushes every waiting entry of the user's buffer, in batches, under their lease.
        Failed entries are retried; automatic flushes stop retrying after
        `flush_max_attempts`, while one a caller asks for retries them all."""
        if self._pipeline is None:
            raise FailedPrecondition(LLM_NOT_CONFIGURED)
        pipeline = self._pipeline
        settings = self._settings
        # Another flush of the user may hold the lease for a while (a slow model): wait for
        # it as long as a request may take, not just one lease period.
        wait_s = max(settings.flush_lease_seconds, settings.request_deadline_seconds)
        async with self._locks.hold(project_id, user_id, wait_s=wait_s) as lease:
            await self.recover(project_id, user_id)
            await self._buffer_state.flushed(project_id, user_id, blob_type.value)
            results: list[FlushResult] = []
            empty_claims = 0
            finished = False
            while not finished:
                if not await lease.held():
                    # Lost to a wiped Redis or a long pause: whoever holds it now carries on
                    # (claim fences keep the two apart meanwhile).
                    log.warning("flush of %s/%s stops: its lease was lost", project_id, user_id)
                    return results
                waiting = await self._buffer.next_batch(
                    project_id,
                    user_id,
                    blob_type,
                    max_tokens=settings.max_chat_blob_buffer_process_token_size,
                    max_attempts=settings.flush_max_attempts if not retry_failed else 2**31,
                )
                entries = waiting.entries
                if not entries:
                    return results
                # The record comes first: entries are never processing under a flush id that
                # no record names, so recovery can always release them.
                record = FlushRecord(
                    project_id=project_id,
                    user_id=user_id,
                    flush_id=str(uuid.uuid4()),
                    blob_type=blob_type,
                    state=FlushState.CLAIMED,
                    blob_ids=tuple(e.blob_id for e in entries),
                    created_at=utcnow(),
                )
                await self._flushes.insert(record)
                batch = await self._buffer.claim(project_id, user_id, entries, record.flush_id)
                if not batch:
                    # Taken meanwhile by a flush that lost its lease, or held back by the
                    # claims of a flush that died before applying them: settle what is left
                    # behind (that frees such entries), once; never spin on it.
                    await self._flushes.transition(
                        record, FlushState.ABANDONED, expected=(FlushState.CLAIMED,)
                    )
                    await self._buffer.release(project_id, user_id, record.flush_id)
                    empty_claims += 1
                    if empty_claims > 1:
                        log.warning("flush of %s/%s: nothing left to claim", project_id, user_id)
                        return results
                    await self.recover(project_id, user_id)
                    continue
                if len(batch) < len(entries):
                    record = await self._flushes.narrow(record, tuple(b.blob_id for b in batch))
                # Chats inserted from now on are left to their own trigger: when this batch
                # holds all that waited, there is no need to look again.
                finished = waiting.complete and len(batch) == len(entries)
                result = await self._run(pipeline, record, batch)
                if result is not None:
                    results.append(result)
            return results

    async def recover(self, project_id: str, user_id: str) -> None:
        """Settles flushes a dead worker left behind. Call only under the user's lease."""
        unfinished = await self._flushes.unfinished(project_id, user_id)
        named = {r.flush_id for r in unfinished}
        for flush_id in await self._buffer.processing_flush_ids(project_id, user_id) - named:
            # Processing under a flush that is not unfinished: its record is settled (or was
            # never written, by a version that claimed before recording); nothing will finish it.
            stranded = await self._flushes.get(project_id, user_id, flush_id)
            if stranded is None or stranded.state in (FlushState.ABANDONED, FlushState.FAILED):
                log.info("releasing chats stranded by flush %s", flush_id)
                await self._buffer.release(project_id, user_id, flush_id)
        record: FlushRecord | None
        for found in unfinished:
            record = found
            if found.state is FlushState.CLAIMED:
                if await self._flushes.transition(
                    found, FlushState.ABANDONED, expected=(FlushState.CLAIMED,)
                ):
                    record = replace(found, state=FlushState.ABANDONED)
                else:  # decided already: roll forward to what its fence says
                    record = await self._flushes.follow_fence(found)
            if record is None:
                continue
            if record.state is FlushState.COMPUTED and record.plan is not None:
                log.info("resuming the commit of flush %s", record.flush_id)
                await self._commit(record, record.plan, resumed=True)
            elif record.state is FlushState.ABANDONED:
                log.info("abandoned flush %s; its chats go back to the buffer", record.flush_id)
                await self._buffer.release(project_id, user_id, record.flush_id)
            elif record.state is FlushState.FAILED:
                await self._buffer.settle(
                    project_id,
                    user_id,
                    record.flush_id,
                    BufferStatus.FAILED,
                    error=record.error,
                )

    async def _run(
        self, pipeline: MemoryPipeline, record: FlushRecord, batch: list[Blob]
    ) -> FlushResult | None:
        flush_id = record.flush_id
        crash_point("after_claim")
        started = time.perf_counter()
        try:
            config = await self._configs.memory_config(record.project_id)
            profile = await self._profiles.load(record.project_id, record.user_id)
            plan = await pipeline.compute(flush_id, batch, profile, config)
            computed = time.perf_counter()
        except MemobaseError as exc:
            self._observer.flush_done("failed", time.perf_counter() - started)
            await self._fail(record, exc.message)
            raise
        except Exception:
            self._observer.flush_done("error", time.perf_counter() - started)
            await self._fail(record, "internal error while processing the chats")
            raise
        try:
            await self._usage.add_tokens(
                record.project_id, utcnow().date(), plan.usage, record_id=flush_id
            )
        except Exception as exc:  # accounting never costs the flush its (paid for) plan
            log.warning("flush %s: token usage not recorded: %r", flush_id, exc)
        if not await self._flushes.transition(
            record, FlushState.COMPUTED, expected=(FlushState.CLAIMED,), plan=plan
        ):
            log.warning("flush %s was taken over while computing; dropping its plan", flush_id)
            self._observer.flush_done("dropped", time.perf_counter() - started)
            return None
        crash_point("after_compute")
        try:
            result = await self._commit(record, plan, loaded=profile)
        except Exception:
            self._observer.flush_done("error", time.perf_counter() - started)
            raise
        self._observer.flush_done("committed", time.perf_counter() - started)
        done = time.perf_counter()
        log.info(
            "flush %s: %d chats, %d profile changes, event %s, %.0f ms (model %.0f ms, "
            "writes %.0f ms)",
            flush_id,
            len(batch),
            len(plan.slot_ops),
            plan.event_id,
            (done - started) * 1000,
            (computed - started) * 1000,
            (done - computed) * 1000,
        )
        return result

    async def _fail(self, record: FlushRecord, reason: str) -> None:
        log.warning("flush %s failed: %s", record.flush_id, reason)
        if await self._flushes.transition(
            record, FlushState.FAILED, expected=(FlushState.CLAIMED,), error=reason
        ):
            await self._buffer.settle(
                record.project_id,
                record.user_id,
                record.flush_id,
                BufferStatus.FAILED,
                error=reason,
            )

    async def _commit(
        self,
        record: FlushRecord,
        plan: FlushPlan,
        *,
        loaded: UserProfile | None = None,
        resumed: bool = False,
    ) -> FlushResult:
        """`loaded`: the profile the plan was computed from, as read then; `resumed`: the
        commit of a flush that died, which may have written some of this already."""
        now = utcnow()
        if plan.event_id is not None:
            event = Event(
                project_id=record.project_id,
                user_id=record.user_id,
                event_id=plan.event_id,
                event_tip=plan.event_tip,
                event_tags=plan.event_tags,
                profile_delta=tuple(
                    DeltaEntry(op.delta, op.topic, op.sub_topic)
                    for op in plan.slot_ops
                    if op.delta is not None
                ),
                created_at=now,
                updated_at=now,
                flush_id=plan.flush_id,
            )
            vectors = plan.gist_vectors
            gists = [
                EventGist(
                    project_id=record.project_id,
                    user_id=record.user_id,
                    gist_id=plan.gist_id(i),
                    event_id=plan.event_id,
                    content=content,
                    created_at=now,
                    vector=vectors[i] if vectors is not None else None,
                    embedding_model=plan.embedding_model,
                )
                for i, content in enumerate(plan.gists)
            ]
            await self._events.insert_event(event, gists)
            if resumed:  # the stored event may be an earlier attempt's: read it back
                await self._timeline.changed(record.project_id, record.user_id)
            else:
                await self._timeline.added(event, gists)
            if gists:
                await self._index(event, gists)
        crash_point("after_event")
        changes = await self._apply_profile(record, plan, loaded)
        crash_point("after_profile")
        keep = self._settings.persistent_chat_blobs or record.blob_type is not BlobType.CHAT
        await self._buffer.settle(
            record.project_id, record.user_id, plan.flush_id, BufferStatus.DONE, delete=not keep
        )
        await self._flushes.transition(
            record, FlushState.COMMITTED, expected=(FlushState.COMPUTED,)
        )
        return FlushResult(plan.event_id, changes.added, changes.updated, changes.deleted)

    async def _apply_profile(
        self, record: FlushRecord, plan: FlushPlan, loaded: UserProfile | None
    ) -> ProfileChanges:
        if not plan.slot_ops:
            return ProfileChanges()
        outcome = ProfileChanges()

        async def change(profile: UserProfile) -> UserProfile | None:
            nonlocal outcome
            if plan.flush_id in profile.applied_flushes:  # a resumed commit: already applied
                return None
            updated, outcome = apply_slot_ops(profile, plan.slot_ops, plan.flush_id, utcnow())
            return updated

        await self._profiles.update(record.project_id, record.user_id, change, loaded=loaded)
        return outcome
