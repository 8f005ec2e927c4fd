"""The scripted model's mutable state: the injected fault and the call statistics."""

from __future__ import annotations

from collections import Counter, deque
from dataclasses import dataclass, field
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

FaultMode = Literal[
    "none",
    "http_500",
    "http_429",
    "timeout",
    "malformed_json",  # chat: the answer's content is cut JSON; embeddings: the HTTP body is
    "schema_violation",  # chat: valid JSON of the wrong shape; embeddings: one dimension short
    "malformed_body",  # the HTTP body itself is not JSON (a broken proxy, a gateway page)
]
Endpoint = Literal["chat", "embeddings"]


class FaultConfig(BaseModel):
    """What `POST /_scripted/faults` accepts."""

    model_config = ConfigDict(extra="forbid")

    mode: FaultMode = "none"
    count: int = Field(default=-1, ge=-1, description="Next matching requests; -1 = until reset")
    latency_ms: int = Field(default=0, ge=0, description="Added to every matching answer")
    steps: list[str] | None = Field(default=None, description="Only these chat steps")
    endpoint: Endpoint | None = None
    timeout_s: float = Field(default=30.0, ge=0, description="How long `timeout` holds a request")
    retry_after_ms: int | None = Field(
        default=None, ge=0, description="Sent as retry-after-ms with http_429 and http_500"
    )


@dataclass(frozen=True)
class Decision:
    """What to do with one request."""

    fault: FaultMode = "none"
    latency_s: float = 0.0
    hold_s: float = 0.0
    retry_after_ms: int | None = None


@dataclass
class Stats:
    calls: Counter[str] = field(default_factory=Counter)
    prompt_tokens: Counter[str] = field(default_factory=Counter)
    completion_tokens: Counter[str] = field(default_factory=Counter)
    embedding_calls: int = 0
    embedding_tokens: int = 0

    def as_json(self) -> dict[str, object]:
        return {
            "calls": dict(self.calls),
            "prompt_tokens": dict(self.prompt_tokens),
            "completion_tokens": dict(self.completion_tokens),
            "embedding_calls": self.embedding_calls,
            "embedding_tokens": self.embedding_tokens,
        }


@dataclass(frozen=True)
class RecordedRequest:
    """A request the scripted model answered (or faulted), for tests that check prompts."""

    endpoint: Endpoint
    step: str | None
    headers: dict[str, str]
    body: dict[str, Any]

    def as_json(self) -> dict[str, object]:
        return {"endpoint": self.endpoint, "step": self.step, "body": self.body}


RECORDED_REQUESTS = 100


class ScriptedState:
    """One fault configuration at a time, consumed request by request, and the statistics.

    Everything runs on the server's event loop, so no locking is needed."""

    def __init__(self) -> None:
        self.stats = Stats()
        self.requests: deque[RecordedRequest] = deque(maxlen=RECORDED_REQUESTS)
        self._faults = FaultConfig()
        self._remaining = 0

    @property
    def faults(self) -> FaultConfig:
        return self._faults

    @property
    def remaining(self) -> int:
        """How many more matching requests get the fault; -1 = unlimited."""
        return self._remaining

    def set_faults(self, config: FaultConfig) -> None:
        self._faults = config
        self._remaining = config.count

    def reset_faults(self) -> None:
        self.set_faults(FaultConfig())

    def reset_stats(self) -> None:
        """Clears the statistics and the recorded requests."""
        self.stats = Stats()
        self.requests.clear()

    def decide(self, endpoint: Endpoint, step: str | None) -> Decision:
        """The treatment of the next request to `endpoint` (chat requests name their step);
        consumes one unit of the fault's count when the fault applies."""
        config = self._faults
        if config.endpoint is not None and config.endpoint != endpoint:
            return Decision()
        if config.steps is not None and (endpoint != "chat" or step not in config.steps):
            return Decision()
        fault: FaultMode = "none"
        if config.mode != "none" and self._remaining != 0:
            fault = config.mode
            if self._remaining > 0:
                self._remaining -= 1
        return Decision(
            fault=fault,
            latency_s=config.latency_ms / 1000,
            hold_s=config.timeout_s,
            retry_after_ms=config.retry_after_ms,
        )
