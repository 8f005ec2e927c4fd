"""Periodic duties: idle flushes (users quiet for `buffer_flush_interval`) and the reconcile
pass that rebuilds Redis from MongoDB (counters, and jobs for every user whose chats wait)."""

from __future__ import annotations

import asyncio
import logging
import time

from memobase_server.domain.models import BlobType
from memobase_server.services.flushes import FlushService
from memobase_server.storage.mongo.blobs import MongoBufferRepo
from memobase_server.storage.redis.buffer_state import RedisBufferState

log = logging.getLogger(__name__)

IDLE_CHECK_SECONDS = 5.0


class FlushScheduler:
    def __init__(
        self,
        flushes: FlushService,
        buffer: MongoBufferRepo,
        buffer_state: RedisBufferState,
        *,
        idle_after_s: float,
        reconcile_every_s: float,
        max_attempts: int,
        size_threshold: int,
    ) -> None:
        self._flushes = flushes
        self._buffer = buffer
        self._buffer_state = buffer_state
        self._idle_after_s = idle_after_s
        self._reconcile_every_s = reconcile_every_s
        self._max_attempts = max_attempts
        self._size_threshold = size_threshold

    async def run(self) -> None:
        last_reconcile = -float("inf")
        while True:
            try:
                if time.monotonic() - last_reconcile >= self._reconcile_every_s:
                    await self.reconcile()
                    last_reconcile = time.monotonic()
                await self.flush_idle()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("flush scheduler: %r; retrying", exc)
            await asyncio.sleep(IDLE_CHECK_SECONDS)

    async def flush_idle(self) -> int:
        cutoff = time.time() - self._idle_after_s
        due = await self._buffer_state.idle_since(cutoff)
        for project_id, user_id, blob_type in due:
            await self._flushes.enqueue(project_id, user_id, BlobType(blob_type), "idle")
            await self._buffer_state.forget(project_id, user_id, blob_type)
        return len(due)

    async def reconcile(self) -> int:
        """Rebuilds the Redis side of every waiting buffer from MongoDB: idle token counters
        and idle clocks; queues a flush where chats were left mid-flush or failed, or where
        the buffer is past the size threshold. Safe to run anywhere, any time."""
        queued = 0
        pending = await self._buffer.pending(self._max_attempts)
        for (project_id, user_id, blob_type), summary in pending.items():
            if summary.last_idle_at is not None:
                await self._buffer_state.restore(
                    project_id,
                    user_id,
                    blob_type,
                    summary.idle_tokens,
                    summary.last_idle_at.timestamp(),
                )
            if summary.unfinished or summary.idle_tokens > self._size_threshold:
                await self._flushes.enqueue(project_id, user_id, BlobType(blob_type), "reconcile")
                queued += 1
        if queued:
            log.info("reconcile: %d of %d waiting buffers queued", queued, len(pending))
        return queued
