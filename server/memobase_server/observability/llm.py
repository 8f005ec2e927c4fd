"""Chat model metrics without touching the adapter: `InstrumentedChatModel` wraps any
`ChatModel` and reports each call's step, outcome, tokens (all attempts, failures included:
the errors carry their usage), invalid answers and latency."""

from __future__ import annotations

import time
from typing import Protocol

from memobase_server.llm.ports import (
    NO_USAGE,
    ChatModel,
    LLMOutputError,
    LLMReply,
    LLMUnavailable,
    LLMUsage,
    T,
)

__all__ = ["InstrumentedChatModel", "LLMObserver"]


class LLMObserver(Protocol):
    def llm_call_done(
        self,
        step: str,
        outcome: str,
        *,
        prompt_tokens: int,
        completion_tokens: int,
        invalid_answers: int,
        seconds: float,
    ) -> None: ...


class InstrumentedChatModel:
    """A ChatModel that reports every `complete` to `observer`. Outcomes: `ok`,
    `unavailable` (provider down, 5xx, 429 or timeout after retries), `invalid_output` (no
    answer validated), `error` (anything else, e.g. cancellation)."""

    def __init__(self, inner: ChatModel, observer: LLMObserver) -> None:
        self._inner = inner
        self._observer = observer

    @property
    def inner(self) -> ChatModel:
        return self._inner

    def _report(
        self, step: str, outcome: str, usage: LLMUsage, invalid: int, started: float
    ) -> None:
        self._observer.llm_call_done(
            step,
            outcome,
            prompt_tokens=usage.prompt_tokens,
            completion_tokens=usage.completion_tokens,
            invalid_answers=invalid,
            seconds=time.perf_counter() - started,
        )

    async def complete(
        self, *, step: str, model: str, system: str, user: str, schema: type[T]
    ) -> LLMReply[T]:
        started = time.perf_counter()
        try:
            reply = await self._inner.complete(
                step=step, model=model, system=system, user=user, schema=schema
            )
        except LLMUnavailable as exc:
            self._report(step, "unavailable", exc.usage, 0, started)
            raise
        except LLMOutputError as exc:
            self._report(step, "invalid_output", exc.usage, exc.attempts, started)
            raise
        except BaseException:
            self._report(step, "error", NO_USAGE, 0, started)
            raise
        self._report(step, "ok", reply.usage, max(0, reply.attempts - 1), started)
        return reply
