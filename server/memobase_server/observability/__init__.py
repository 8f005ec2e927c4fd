"""Observability: Prometheus metrics (`metrics`), the hooks instrumented code calls (`hooks`),
chat model instrumentation (`llm`) and optional OpenTelemetry tracing (`tracing`)."""

from __future__ import annotations

from .hooks import (
    NO_OBSERVER,
    FlushJobObserver,
    FlushJobOutcome,
    FlushObserver,
    FlushOutcome,
    GatewayObserver,
    RpcObserver,
)

__all__ = [
    "NO_OBSERVER",
    "FlushJobObserver",
    "FlushJobOutcome",
    "FlushObserver",
    "FlushOutcome",
    "GatewayObserver",
    "RpcObserver",
]
