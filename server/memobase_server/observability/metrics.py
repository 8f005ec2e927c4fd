"""Prometheus metrics: one registry per process, owned by `Metrics`, exposed at `/metrics` on
the HTTP port (an `extra_routes` handler of the gateway).

Series:

- `memobase_rpc_duration_seconds{method,code}` histogram: every unary gRPC call (REST calls
  included, they go through the same handlers); `method` is the full gRPC path;
- `memobase_gateway_requests_total{route,status}` and
  `memobase_gateway_request_duration_seconds{route}`: HTTP requests by path template;
- `memobase_flush_queue_depth` and `memobase_flush_queue_oldest_age_seconds` gauges, read from
  Redis when scraped: the stream's length (jobs waiting or being processed; acknowledged jobs
  are deleted) and the age of its oldest entry (0 when empty);
- `memobase_flush_duration_seconds{outcome}` histogram: one flush (one batch, one flush id);
- `memobase_flush_jobs_total{reason,outcome}`: queued jobs the workers finished (`skipped`: a
  size-triggered job whose buffer a flush emptied meanwhile);
- `memobase_unkeyed_queries_total{collection,command}`: MongoDB queries that selected by none
  of `_id`, `user_id` or `due` outside an allowed scan (`storage/mongo/query_audit.py`): each
  one reads a whole collection on FerretDB, so anything but 0 is a bug;
- `memobase_llm_calls_total{step,outcome}`, `memobase_llm_tokens_total{step,kind}`,
  `memobase_llm_call_duration_seconds{step}` and `memobase_llm_invalid_answers_total{step}`:
  chat model calls (one call may take several completions when answers do not validate);
- the client library's `process_*` and `python_*` series.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Iterable, Iterator, MutableMapping
from dataclasses import dataclass
from typing import Any

import redis.asyncio as aioredis
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Histogram,
    disable_created_metrics,
    generate_latest,
)
from prometheus_client.gc_collector import GCCollector
from prometheus_client.metrics_core import GaugeMetricFamily, Metric
from prometheus_client.platform_collector import PlatformCollector
from prometheus_client.process_collector import ProcessCollector

from memobase_server.observability.hooks import FlushJobOutcome, FlushOutcome
from memobase_server.storage.redis import keys

__all__ = [
    "CONTENT_TYPE",
    "METRICS_PATH",
    "FlushQueueCollector",
    "Metrics",
    "QueueProbe",
    "QueueStats",
    "flush_queue_probe",
    "metrics_asgi_app",
    "redis_stream_probe",
]

log = logging.getLogger(__name__)

CONTENT_TYPE = CONTENT_TYPE_LATEST
METRICS_PATH = "/metrics"
PROBE_TIMEOUT_S = 2.0

RPC_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)
FLUSH_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 20, 30, 60, 120, 300, 600)
LLM_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 20, 30, 60, 120)


@dataclass(frozen=True, slots=True)
class QueueStats:
    depth: int
    oldest_age_seconds: float


QueueProbe = Callable[[], Awaitable[QueueStats]]


def _text(value: object) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def redis_stream_probe(redis: aioredis.Redis, stream: str) -> QueueProbe:
    """XLEN of a stream and the age of its oldest entry (from the entry id's milliseconds,
    against the Redis server's clock), in one round trip."""

    async def probe() -> QueueStats:
        async with redis.pipeline(transaction=False) as pipe:
            pipe.xlen(stream)
            pipe.xrange(stream, "-", "+", count=1)
            pipe.time()
            depth, first, now = await pipe.execute()
        age = 0.0
        if first:
            entry_ms = int(_text(first[0][0]).partition("-")[0])
            seconds, micros = now
            age = max(0.0, float(seconds) + float(micros) / 1e6 - entry_ms / 1000)
        return QueueStats(int(depth), age)

    return probe


def flush_queue_probe(redis: aioredis.Redis, namespace: str) -> QueueProbe:
    """The probe of the flush stream of a deployment (`project_id` namespace)."""
    return redis_stream_probe(redis, keys.flush_stream(namespace))


class FlushQueueCollector:
    """Queue gauges from an async probe. Prometheus collects synchronously, so `refresh` runs
    the probe first (the `/metrics` handler awaits it); a probe that fails or times out leaves
    the gauges out of that scrape rather than reporting stale values."""

    def __init__(self, probe: QueueProbe, *, timeout_s: float = PROBE_TIMEOUT_S) -> None:
        self._probe = probe
        self._timeout_s = timeout_s
        self._stats: QueueStats | None = None

    async def refresh(self) -> None:
        try:
            async with asyncio.timeout(self._timeout_s):
                self._stats = await self._probe()
        except Exception as exc:
            self._stats = None
            log.warning("flush queue metrics unavailable: %r", exc)

    def _families(self) -> tuple[GaugeMetricFamily, GaugeMetricFamily]:
        return (
            GaugeMetricFamily(
                "memobase_flush_queue_depth",
                "Flush jobs in the Redis stream (waiting or being processed).",
            ),
            GaugeMetricFamily(
                "memobase_flush_queue_oldest_age_seconds",
                "Age of the oldest flush job in the stream; 0 when it is empty.",
            ),
        )

    def describe(self) -> Iterable[Metric]:
        return self._families()

    def collect(self) -> Iterator[Metric]:
        stats = self._stats
        if stats is None:
            return
        depth, age = self._families()
        depth.add_metric([], stats.depth)
        age.add_metric([], stats.oldest_age_seconds)
        yield depth
        yield age


class Metrics:
    """Owns the registry and every series; implements the observer protocols of `hooks`."""

    def __init__(
        self, registry: CollectorRegistry | None = None, *, process_metrics: bool = True
    ) -> None:
        # `*_created` series would double the output; the switch is process-wide, and this
        # process's metrics are ours.
        disable_created_metrics()  # type: ignore[no-untyped-call, unused-ignore]
        self.registry = registry if registry is not None else CollectorRegistry()
        if process_metrics:
            ProcessCollector(registry=self.registry)
            PlatformCollector(registry=self.registry)
            GCCollector(registry=self.registry)
        r = self.registry
        self.rpc_duration = Histogram(
            "memobase_rpc_duration_seconds",
            "Unary gRPC calls by method and status code.",
            ["method", "code"],
            buckets=RPC_BUCKETS,
            registry=r,
        )
        self.gateway_requests = Counter(
            "memobase_gateway_requests",
            "REST gateway requests by route template and HTTP status.",
            ["route", "status"],
            registry=r,
        )
        self.gateway_duration = Histogram(
            "memobase_gateway_request_duration_seconds",
            "REST gateway request latency by route template.",
            ["route"],
            buckets=RPC_BUCKETS,
            registry=r,
        )
        self.flush_duration = Histogram(
            "memobase_flush_duration_seconds",
            "Flushes (one batch of a user's buffer) by outcome.",
            ["outcome"],
            buckets=FLUSH_BUCKETS,
            registry=r,
        )
        self.flush_jobs = Counter(
            "memobase_flush_jobs",
            "Queued flush jobs the workers finished, by why they were queued and outcome.",
            ["reason", "outcome"],
            registry=r,
        )
        self.llm_calls = Counter(
            "memobase_llm_calls",
            "Chat model calls by pipeline step and outcome (ok, unavailable, invalid_output, "
            "error).",
            ["step", "outcome"],
            registry=r,
        )
        self.llm_tokens = Counter(
            "memobase_llm_tokens",
            "Chat model tokens by pipeline step and kind (prompt, completion).",
            ["step", "kind"],
            registry=r,
        )
        self.llm_duration = Histogram(
            "memobase_llm_call_duration_seconds",
            "Chat model call latency by step (all attempts of one call).",
            ["step"],
            buckets=LLM_BUCKETS,
            registry=r,
        )
        self.llm_invalid_answers = Counter(
            "memobase_llm_invalid_answers",
            "Model answers that did not validate against the step's schema (each was asked "
            "for again, up to the retry limit).",
            ["step"],
            registry=r,
        )
        self.unkeyed_queries = Counter(
            "memobase_unkeyed_queries",
            "MongoDB queries that selected by none of _id, user_id or due outside an allowed "
            "scan (each reads a whole collection on FerretDB).",
            ["collection", "command"],
            registry=r,
        )
        self._refreshers: list[Callable[[], Awaitable[None]]] = []

    # --- observer protocols (hooks.py) ------------------------------------------------------

    def rpc_done(self, method: str, code: str, seconds: float) -> None:
        self.rpc_duration.labels(method, code).observe(seconds)

    def gateway_request_done(self, route: str, status: int, seconds: float) -> None:
        self.gateway_requests.labels(route, str(status)).inc()
        self.gateway_duration.labels(route).observe(seconds)

    def flush_done(self, outcome: FlushOutcome, seconds: float) -> None:
        self.flush_duration.labels(outcome).observe(seconds)

    def flush_job_done(self, reason: str, outcome: FlushJobOutcome) -> None:
        self.flush_jobs.labels(reason or "unknown", outcome).inc()

    def unkeyed_query(self, collection: str, command: str) -> None:
        self.unkeyed_queries.labels(collection, command).inc()

    def llm_call_done(
        self,
        step: str,
        outcome: str,
        *,
        prompt_tokens: int,
        completion_tokens: int,
        invalid_answers: int,
        seconds: float,
    ) -> None:
        self.llm_calls.labels(step, outcome).inc()
        if prompt_tokens:
            self.llm_tokens.labels(step, "prompt").inc(prompt_tokens)
        if completion_tokens:
            self.llm_tokens.labels(step, "completion").inc(completion_tokens)
        if invalid_answers:
            self.llm_invalid_answers.labels(step).inc(invalid_answers)
        self.llm_duration.labels(step).observe(seconds)

    # --- scrape-time gauges and exposition --------------------------------------------------

    def watch_flush_queue(self, probe: QueueProbe) -> FlushQueueCollector:
        """Adds the queue depth and age gauges, read through `probe` at each scrape."""
        collector = FlushQueueCollector(probe)
        self.registry.register(collector)
        self._refreshers.append(collector.refresh)
        return collector

    async def exposition(self) -> bytes:
        """The text format of every series, after refreshing the scrape-time gauges."""
        if self._refreshers:
            await asyncio.gather(*(refresh() for refresh in self._refreshers))
        return generate_latest(self.registry)

    async def handle_scrape(self) -> tuple[int, bytes, str]:
        """The gateway's `extra_routes` handler for `/metrics`."""
        return 200, await self.exposition(), CONTENT_TYPE


ASGIMessage = MutableMapping[str, Any]


def metrics_asgi_app(
    metrics: Metrics, path: str = METRICS_PATH
) -> Callable[
    [ASGIMessage, Callable[[], Awaitable[ASGIMessage]], Callable[[ASGIMessage], Awaitable[None]]],
    Awaitable[None],
]:
    """A bare ASGI app answering `GET /metrics`, for processes without the gateway (a
    `memobase-server worker`): host it with `transport.http_server.HttpServer`."""

    async def app(
        scope: ASGIMessage,
        receive: Callable[[], Awaitable[ASGIMessage]],
        send: Callable[[ASGIMessage], Awaitable[None]],
    ) -> None:
        if scope["type"] == "lifespan":
            while True:
                message = await receive()
                if message["type"] == "lifespan.startup":
                    await send({"type": "lifespan.startup.complete"})
                elif message["type"] == "lifespan.shutdown":
                    await send({"type": "lifespan.shutdown.complete"})
                    return
        if scope["type"] != "http":
            return
        if scope.get("path") == path and scope.get("method") in ("GET", "HEAD"):
            status, body, content_type = await metrics.handle_scrape()
        else:
            status, body, content_type = 404, b"not found\n", "text/plain; charset=utf-8"
        await send(
            {
                "type": "http.response.start",
                "status": status,
                "headers": [
                    (b"content-type", content_type.encode("latin-1")),
                    (b"content-length", str(len(body)).encode("ascii")),
                ],
            }
        )
        await send(
            {"type": "http.response.body", "body": b"" if scope["method"] == "HEAD" else body}
        )

    return app
