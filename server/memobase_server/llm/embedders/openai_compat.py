"""Embeddings from any OpenAI-compatible endpoint (OpenAI, Azure-style gateways, Ollama,
LM Studio, vLLM, Jina, ...) through `openai.AsyncOpenAI`.

Texts go in batches of up to 256 per request. The client's own timeout and bounded retries
(with backoff, on connection errors, 408, 409, 429 and 5xx) apply to each request. Any failure
becomes `Unavailable("Embedding provider failed: <short reason>")`: the reason names the kind of
failure or the HTTP status, never the provider's text, a key or a stack trace (those go to the
log). Every returned vector must have `dim` values, else the call fails too, so a model change
behind the endpoint can never put vectors of another size into the index. Vectors are
L2-normalised here, since not every provider returns unit vectors.
"""

from __future__ import annotations

import base64
import binascii
import json
import logging
from collections.abc import Sequence

import numpy as np
import openai

from memobase_server.domain.errors import Unavailable
from memobase_server.llm.ports import EmbeddingPhase

log = logging.getLogger("memobase.embedder")

BATCH_SIZE = 256


class OpenAIEmbedder:
    """Implements Embedder against an OpenAI-compatible `/embeddings` endpoint.

    `send_dimensions=True` passes `dimensions=dim` with each request, for models that can
    shorten their vectors (OpenAI's text-embedding-3 family); leave it off for the rest, which
    reject or ignore the parameter.
    """

    def __init__(
        self,
        *,
        model: str,
        dim: int,
        base_url: str | None = None,
        api_key: str | None = None,
        send_dimensions: bool = False,
        timeout: float = 30.0,
        max_retries: int = 2,
        batch_size: int = BATCH_SIZE,
        client: openai.AsyncOpenAI | None = None,
    ) -> None:
        if dim < 1:
            raise ValueError(f"dim must be positive, got {dim}")
        if not 1 <= batch_size <= 2048:
            raise ValueError(f"batch_size must be 1 to 2048, got {batch_size}")
        self._model = model
        self._dim = dim
        self._send_dimensions = send_dimensions
        self._batch_size = batch_size
        self._client = client or openai.AsyncOpenAI(
            # Local servers need no key, but the client insists on one: never fall back to
            # the environment's OPENAI_API_KEY for a base URL it was not meant for.
            api_key=api_key or "not-needed",
            base_url=base_url,
            timeout=timeout,
            max_retries=max_retries,
        )

    @property
    def dim(self) -> int:
        return self._dim

    @property
    def model_name(self) -> str:
        return self._model

    async def embed(self, texts: Sequence[str], phase: EmbeddingPhase) -> list[list[float]]:
        vectors: list[list[float]] = []
        for start in range(0, len(texts), self._batch_size):
            vectors.extend(await self._embed_batch(list(texts[start : start + self._batch_size])))
        return vectors

    async def _embed_batch(self, batch: list[str]) -> list[list[float]]:
        # Some providers reject an empty string; one space embeds as "nothing" everywhere.
        inputs = [text if text.strip() else " " for text in batch]
        try:
            # The raw body, parsed by the json module: the client library would build a Python
            # object per float (a fifth of a busy server's CPU, measured), for no gain.
            raw = await self._client.embeddings.with_raw_response.create(
                model=self._model,
                input=inputs,
                encoding_format="float",
                dimensions=self._dim if self._send_dimensions else openai.omit,
            )
            body = json.loads(raw.http_response.content)
        except openai.APITimeoutError:
            raise _failed("timed out") from None
        except openai.APIConnectionError:
            raise _failed("could not connect") from None
        except openai.APIStatusError as exc:
            log.warning("embedding request failed: HTTP %s", exc.status_code)
            raise _failed(f"HTTP {exc.status_code}") from None
        except openai.OpenAIError as exc:
            log.warning("embedding request failed: %s", type(exc).__name__)
            raise _failed(type(exc).__name__) from None
        except ValueError:
            raise _failed("malformed response") from None

        try:
            vectors: list[tuple[int, object]] = [
                (int(item["index"]), _decoded(item["embedding"])) for item in body["data"]
            ]
        except (KeyError, TypeError, ValueError, binascii.Error):
            raise _failed("malformed response") from None
        return self._checked(vectors, len(batch))

    def _checked(self, indexed: list[tuple[int, object]], expected: int) -> list[list[float]]:
        if len(indexed) != expected:
            raise _failed(f"{len(indexed)} vectors returned for {expected} texts")
        rows: list[list[float]] = []
        for _, embedding in sorted(indexed, key=lambda pair: pair[0]):
            if not isinstance(embedding, list):
                raise _failed("vector returned in an unexpected encoding")
            if len(embedding) != self._dim:
                raise _failed(
                    f"model {self._model!r} returned a vector of dimension "
                    f"{len(embedding)}, expected {self._dim}"
                )
            rows.append(embedding)
        try:
            matrix = np.asarray(rows, dtype=np.float64)
        except (TypeError, ValueError):
            raise _failed("vector with a value that is not a number") from None
        if not np.isfinite(matrix).all():
            raise _failed("vector with a value that is not a finite number")
        norms = np.linalg.norm(matrix, axis=1, keepdims=True)
        if (norms == 0).any():
            raise _failed("zero vector returned")
        normalised: list[list[float]] = (matrix / norms).tolist()
        return normalised

    async def close(self) -> None:
        await self._client.close()


def _decoded(embedding: object) -> object:
    """A vector as sent: a list of floats, or (from providers that send it whatever was asked)
    OpenAI's base64 of little-endian float32s."""
    if isinstance(embedding, str):
        raw = base64.b64decode(embedding, validate=True)
        if len(raw) % 4:
            raise ValueError("base64 vector of a partial float")
        return np.frombuffer(raw, dtype="<f4").astype(np.float64).tolist()
    return embedding


def _failed(reason: str) -> Unavailable:
    return Unavailable(f"Embedding provider failed: {reason}")
