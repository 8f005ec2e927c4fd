"""Flush workers: consume the flush stream, run flushes, acknowledge. Several run per process
(`flush_workers`) and any number of processes can join the same consumer group."""

from __future__ import annotations

import asyncio
import logging
import os
import socket

from memobase_server.domain.errors import MemobaseError
from memobase_server.domain.models import BlobType
from memobase_server.observability.hooks import NO_OBSERVER, FlushJobObserver, FlushJobOutcome
from memobase_server.services.flushes import FlushService
from memobase_server.storage.redis.flush_queue import FlushJob, RedisFlushQueue

log = logging.getLogger(__name__)

READ_BLOCK_MS = 1000


def consumer_name() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


class FlushWorker:
    def __init__(
        self,
        queue: RedisFlushQueue,
        flushes: FlushService,
        *,
        concurrency: int,
        reclaim_after_s: float,
        observer: FlushJobObserver = NO_OBSERVER,
    ) -> None:
        self._queue = queue
        self._flushes = flushes
        self._slots = asyncio.Semaphore(concurrency)
        self._concurrency = concurrency
        self._reclaim_after_ms = int(reclaim_after_s * 1000)
        self._consumer = consumer_name()
        self._running: dict[asyncio.Task[None], str] = {}
        self._stopping = asyncio.Event()
        self._observer = observer

    async def run(self) -> None:
        """Until `stop`: read jobs while a slot is free; every quarter of the reclaim time,
        mark the jobs in hand as alive and take over jobs that a dead consumer left
        unacknowledged for longer than that time."""
        await self._queue.ensure_group()
        last_reclaim = 0.0
        loop = asyncio.get_running_loop()
        tick_s = self._reclaim_after_ms / 4000
        while not self._stopping.is_set():
            try:
                if loop.time() - last_reclaim > tick_s:
                    last_reclaim = loop.time()
                    await self._queue.touch(self._consumer, list(self._running.values()))
                    free = self._concurrency - len(self._running)
                    if free > 0:
                        await self._dispatch(
                            await self._queue.reclaim(
                                self._consumer, min_idle_ms=self._reclaim_after_ms, count=free
                            )
                        )
                free = self._concurrency - len(self._running)
                if free <= 0:
                    await asyncio.wait(
                        self._running, timeout=tick_s, return_when=asyncio.FIRST_COMPLETED
                    )
                    continue
                await self._dispatch(
                    await self._queue.read(self._consumer, count=free, block_ms=READ_BLOCK_MS)
                )
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("flush worker: queue unavailable (%r); retrying", exc)
                await asyncio.sleep(1.0)

    async def _dispatch(self, messages: list[tuple[str, FlushJob | None]]) -> None:
        for msg_id, job in messages:
            task = asyncio.create_task(self._handle(msg_id, job))
            self._running[task] = msg_id
            task.add_done_callback(self._forget)

    def _forget(self, task: asyncio.Task[None]) -> None:
        self._running.pop(task, None)

    async def _handle(self, msg_id: str, job: FlushJob | None) -> None:
        async with self._slots:
            if job is not None:
                self._observer.flush_job_done(job.reason, await self._flush(job))
            else:
                self._observer.flush_job_done("unknown", "malformed")
            # Acknowledged whatever happened: failures are recorded on the entries, and the
            # reconciler re-queues users whose chats still wait.
            try:
                await self._queue.ack(msg_id)
            except Exception as exc:
                log.warning("flush job %s not acknowledged (%r); it will be reclaimed", msg_id, exc)

    async def _flush(self, job: FlushJob) -> FlushJobOutcome:
        try:
            await self._queue.started(job)
            if job.reason == "size" and not await self._flushes.size_flush_due(
                job.project_id, job.user_id, BlobType(job.blob_type)
            ):
                return "skipped"
            await self._flushes.flush_now(
                job.project_id,
                job.user_id,
                BlobType(job.blob_type),
                retry_failed=job.reason == "manual",
            )
        except MemobaseError as exc:
            log.warning("flush of %s/%s failed: %s", job.project_id, job.user_id, exc.message)
            return "failed"
        except Exception:
            log.exception("flush of %s/%s failed", job.project_id, job.user_id)
            return "error"
        return "done"

    async def stop(self, grace_s: float) -> None:
        """Stops reading; running flushes get `grace_s`, then are cancelled (their jobs stay
        unacknowledged and are reclaimed; their flush records are settled on the next run)."""
        self._stopping.set()
        if self._running:
            _, pending = await asyncio.wait(list(self._running), timeout=grace_s)
            for task in pending:
                task.cancel()
            await asyncio.gather(*pending, return_exceptions=True)
