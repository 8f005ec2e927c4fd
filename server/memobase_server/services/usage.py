"""Usage: insert counters recorded off the hot path, daily usage and billing read back.

Records live in MongoDB, one document per project and UTC day (`<project>:<YYYY-MM-DD>`):
`insert` and `insert_success` come from the UsageRecorder below, `input_tokens` and
`output_tokens` from the flush pipeline. Days without a record read zero; nothing expires.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Protocol

from memobase_server.domain.errors import InvalidArgument
from memobase_server.storage.mongo.usage import DayUsage

log = logging.getLogger(__name__)

DEFAULT_USAGE_DAYS = 7
MAX_USAGE_DAYS = 400
FLUSH_INTERVAL_S = 1.0
CLOSE_TIMEOUT_S = 5.0


def utc_today() -> date:
    return datetime.now(UTC).date()


class InsertCounterStore(Protocol):
    async def add_inserts(
        self, project_id: str, day: date, inserts: int, successes: int, *, writer: str
    ) -> None: ...


class UsageStore(Protocol):
    async def days(self, project_id: str, days: Sequence[date]) -> dict[date, DayUsage]: ...


@dataclass(slots=True)
class _Counts:
    inserts: int = 0
    successes: int = 0


class UsageRecorder:
    """Counts insert calls in memory and writes the increments to MongoDB every
    `interval_s` (and on close) with one `$inc` upsert per project and day.

    `count_insert` is a dictionary update: it never waits and never fails an insert. A write
    that fails keeps its increments for the next round; counts are lost only if the process
    dies before a successful write (at most `interval_s` of them, or the length of a database
    outage). A write whose acknowledgement is lost may be retried and count twice.
    """

    def __init__(
        self,
        store: InsertCounterStore,
        *,
        interval_s: float = FLUSH_INTERVAL_S,
        today: Callable[[], date] = utc_today,
    ) -> None:
        self._store = store
        # This process's own counter documents: no other writer increments them.
        self._writer = uuid.uuid4().hex
        self._interval_s = interval_s
        self._today = today
        self._pending: dict[tuple[str, date], _Counts] = {}
        self._lock = asyncio.Lock()
        self._stop = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._failing = False

    def count_insert(self, project_id: str, success: bool) -> None:
        """One insert call reached the handler; `success`: it was stored and acknowledged."""
        try:
            key = (project_id, self._today())
            counts = self._pending.get(key)
            if counts is None:
                counts = self._pending[key] = _Counts()
            counts.inserts += 1
            if success:
                counts.successes += 1
        except Exception:  # counting must never fail an insert
            log.exception("insert not counted")

    @property
    def pending(self) -> int:
        """Insert calls counted but not yet written."""
        return sum(c.inserts for c in self._pending.values())

    def start(self) -> None:
        """Starts the background writer (in the running event loop)."""
        if self._task is None:
            self._stop.clear()
            self._task = asyncio.create_task(self._run(), name="usage-recorder")

    async def close(self, timeout_s: float = CLOSE_TIMEOUT_S) -> None:
        """Stops the writer after a last write of everything counted."""
        task, self._task = self._task, None
        self._stop.set()
        try:
            await asyncio.wait_for(task if task is not None else self.flush(), timeout_s)
        except TimeoutError:
            log.warning("usage: %d insert calls not written at shutdown", self.pending)

    async def _run(self) -> None:
        while not self._stop.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stop.wait(), self._interval_s)
            await self.flush()

    async def flush(self) -> None:
        """Writes the increments counted so far; on failure keeps the unwritten ones."""
        async with self._lock:
            if not self._pending:
                return
            batch, self._pending = list(self._pending.items()), {}
            for done, ((project_id, day), counts) in enumerate(batch):
                try:
                    await self._store.add_inserts(
                        project_id, day, counts.inserts, counts.successes, writer=self._writer
                    )
                except BaseException as exc:
                    self._requeue(batch[done:])
                    if not isinstance(exc, Exception):
                        raise
                    if not self._failing:
                        log.warning("usage counters not written, will retry: %r", exc)
                    self._failing = True
                    return
            if self._failing:
                log.info("usage counters written again")
                self._failing = False

    def _requeue(self, items: Sequence[tuple[tuple[str, date], _Counts]]) -> None:
        for key, counts in items:
            current = self._pending.setdefault(key, _Counts())
            current.inserts += counts.inserts
            current.successes += counts.successes


@dataclass(frozen=True, slots=True)
class DailyUsage:
    day: date
    usage: DayUsage


@dataclass(frozen=True, slots=True)
class Billing:
    token_left: int | None  # None: unlimited
    next_refill_at: datetime
    month_tokens: int


def first_of_next_month(day: date) -> datetime:
    year, month = (day.year + 1, 1) if day.month == 12 else (day.year, day.month + 1)
    return datetime.combine(date(year, month, 1), time(), tzinfo=UTC)


class UsageReports:
    """Daily usage and this month's billing of a project, from the usage records."""

    def __init__(
        self,
        usage: UsageStore,
        *,
        monthly_token_limit: int | None,
        today: Callable[[], date] = utc_today,
    ) -> None:
        self._usage = usage
        # None or negative (upstream's -1): unlimited
        self._limit = (
            monthly_token_limit
            if monthly_token_limit is not None and monthly_token_limit >= 0
            else None
        )
        self._today = today

    async def daily(self, project_id: str, last_days: int | None = None) -> list[DailyUsage]:
        """One entry per UTC day, today first; days without records read zero."""
        count = DEFAULT_USAGE_DAYS if last_days is None else last_days
        if not 1 <= count <= MAX_USAGE_DAYS:
            raise InvalidArgument(f"last_days must be between 1 and {MAX_USAGE_DAYS}")
        today = self._today()
        days = [today - timedelta(days=n) for n in range(count)]
        found = await self._usage.days(project_id, days)
        return [DailyUsage(day, found.get(day, DayUsage())) for day in days]

    async def billing(self, project_id: str) -> Billing:
        """Tokens spent this UTC month (input + output), what is left of the monthly limit
        (None: unlimited) and when it refills (the first of next month, 00:00 UTC)."""
        today = self._today()
        days = [today.replace(day=n) for n in range(1, today.day + 1)]
        found = await self._usage.days(project_id, days)
        spent = sum(u.input_tokens + u.output_tokens for u in found.values())
        return Billing(
            token_left=None if self._limit is None else self._limit - spent,
            next_refill_at=first_of_next_month(today),
            month_tokens=spent,
        )
