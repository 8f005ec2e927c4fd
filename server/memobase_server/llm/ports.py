"""Model ports: what the pipeline and the read paths need from language and embedding models."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Generic, Literal, Protocol, TypeVar

from pydantic import BaseModel

from memobase_server.domain.errors import Unavailable

EmbeddingPhase = Literal["query", "document"]


class Embedder(Protocol):
    """Turns texts into unit-length vectors of a fixed dimension."""

    @property
    def dim(self) -> int: ...

    @property
    def model_name(self) -> str:
        """Names the model (and so the vector space): vectors of different models never mix."""

    async def embed(self, texts: Sequence[str], phase: EmbeddingPhase) -> list[list[float]]:
        """One vector per text, in order. Raises Unavailable when the provider fails."""

    async def close(self) -> None: ...


# --- Chat models -------------------------------------------------------------------------------


@dataclass(frozen=True)
class LLMUsage:
    """Tokens one logical LLM call consumed, summed over all its attempts."""

    prompt_tokens: int
    completion_tokens: int

    def __add__(self, other: LLMUsage) -> LLMUsage:
        return LLMUsage(
            self.prompt_tokens + other.prompt_tokens,
            self.completion_tokens + other.completion_tokens,
        )


NO_USAGE = LLMUsage(0, 0)

T = TypeVar("T", bound=BaseModel)


@dataclass(frozen=True)
class LLMReply(Generic[T]):
    """A validated answer, what it cost, and how many completions it took to get it."""

    value: T
    usage: LLMUsage
    attempts: int


class LLMUnavailable(Unavailable):
    """The provider could not answer (down, 5xx, 429, timeout) after the transport's retries."""

    def __init__(self, message: str, *, usage: LLMUsage = NO_USAGE) -> None:
        super().__init__(message)
        self.usage = usage


class LLMOutputError(Unavailable):
    """The model answered, but never in the expected format, after every allowed attempt."""

    def __init__(self, message: str, *, usage: LLMUsage = NO_USAGE, attempts: int = 0) -> None:
        super().__init__(message)
        self.usage = usage
        self.attempts = attempts


class ChatModel(Protocol):
    """Asks a chat model for one JSON answer that validates against `schema`."""

    async def complete(
        self, *, step: str, model: str, system: str, user: str, schema: type[T]
    ) -> LLMReply[T]:
        """Raises LLMUnavailable when the provider fails and LLMOutputError when the output
        never validates; `step` names the pipeline step (logs, metrics, the schema's name)."""
