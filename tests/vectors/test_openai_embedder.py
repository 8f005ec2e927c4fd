"""OpenAIEmbedder against a small real HTTP server on a loopback port, which answers
`/v1/embeddings` deterministically. The requested model name picks the server's behaviour."""

from __future__ import annotations

import hashlib
import json
import math
import threading
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from memobase_server.domain.errors import Unavailable
from memobase_server.llm.embedders.openai_compat import OpenAIEmbedder
from tests import servers

API_KEY = "sk-test-secret-0123456789"


def fake_vector(text: str, dim: int) -> list[float]:
    """Deterministic and deliberately not unit length."""
    digest = hashlib.sha256(text.encode()).digest()
    return [(digest[i % len(digest)] - 127.5) / 10 for i in range(dim)]


@dataclass
class FakeProvider:
    url: str
    requests: list[dict[str, Any]] = field(default_factory=list)
    failures_left: int = 0


def make_handler(state: FakeProvider) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:
            pass

        def reply(self, status: int, body: object, headers: dict[str, str] | None = None) -> None:
            raw = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(raw)))
            for name, value in (headers or {}).items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(raw)

        def do_POST(self) -> None:
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            body["authorization"] = self.headers.get("Authorization")
            state.requests.append(body)
            if self.path != "/v1/embeddings":
                self.reply(404, {"error": {"message": "not found"}})
                return
            model: str = body["model"]
            texts: list[str] = body["input"]
            dim = int(body.get("dimensions", 4))
            fast_retry = {"retry-after-ms": "5"}
            if model == "always-500":
                self.reply(500, {"error": {"message": f"boom, key {API_KEY}"}}, fast_retry)
                return
            if model == "flaky" and state.failures_left > 0:
                state.failures_left -= 1
                self.reply(503, {"error": {"message": "busy"}}, fast_retry)
                return
            if model == "slow":
                time.sleep(1.0)
            if model == "wrong-dim":
                dim = 3
            count = len(texts) - 1 if model == "short-answer" else len(texts)
            data = [
                {"object": "embedding", "index": i, "embedding": fake_vector(texts[i], dim)}
                for i in range(count)
            ]
            data.reverse()  # providers may answer out of order; `index` tells
            self.reply(
                200,
                {
                    "object": "list",
                    "data": data,
                    "model": model,
                    "usage": {"prompt_tokens": len(texts), "total_tokens": len(texts)},
                },
            )

    return Handler


class QuietServer(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # a client that gave up (the timeout test) leaves a broken pipe behind


@pytest.fixture(scope="module")
def provider() -> Iterator[FakeProvider]:
    port = servers.free_port()
    state = FakeProvider(url=f"http://127.0.0.1:{port}/v1")
    server = QuietServer(("127.0.0.1", port), make_handler(state))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield state
    server.shutdown()
    server.server_close()
    thread.join()


@pytest.fixture
async def embedder_for(provider: FakeProvider) -> AsyncIterator[Any]:
    made: list[OpenAIEmbedder] = []

    def make(model: str, dim: int = 4, **options: Any) -> OpenAIEmbedder:
        options.setdefault("max_retries", 0)
        embedder = OpenAIEmbedder(
            model=model, dim=dim, base_url=provider.url, api_key=API_KEY, **options
        )
        made.append(embedder)
        return embedder

    provider.requests.clear()
    yield make
    for embedder in made:
        await embedder.close()


def unit(vector: list[float]) -> list[float]:
    norm = math.sqrt(sum(v * v for v in vector))
    return [v / norm for v in vector]


async def test_vectors_in_order_and_unit_length(embedder_for: Any, provider: FakeProvider) -> None:
    embedder: OpenAIEmbedder = embedder_for("good")
    texts = ["alpha", "beta", "gamma"]

    vectors = await embedder.embed(texts, "document")

    assert (embedder.dim, embedder.model_name) == (4, "good")
    assert vectors == [pytest.approx(unit(fake_vector(t, 4))) for t in texts]
    (request,) = provider.requests
    assert request["input"] == texts
    assert request["encoding_format"] == "float"
    assert "dimensions" not in request
    assert request["authorization"] == f"Bearer {API_KEY}"
    assert await embedder.embed([], "query") == []


async def test_batches_of_256(embedder_for: Any, provider: FakeProvider) -> None:
    texts = [f"text {i}" for i in range(600)]
    vectors = await embedder_for("good").embed(texts, "document")

    assert [len(r["input"]) for r in provider.requests] == [256, 256, 88]
    assert vectors[599] == pytest.approx(unit(fake_vector("text 599", 4)))


async def test_dimensions_are_sent_only_when_asked(
    embedder_for: Any, provider: FakeProvider
) -> None:
    vectors = await embedder_for("good", dim=8, send_dimensions=True).embed(["a"], "query")
    assert len(vectors[0]) == 8
    assert provider.requests[-1]["dimensions"] == 8


async def test_a_provider_error_is_unavailable_without_details(
    embedder_for: Any, provider: FakeProvider
) -> None:
    embedder = embedder_for("always-500", max_retries=1)
    with pytest.raises(Unavailable) as caught:
        await embedder.embed(["a"], "document")

    assert caught.value.message == "Embedding provider failed: HTTP 500"
    assert API_KEY not in str(caught.value)
    assert caught.value.__cause__ is None and caught.value.__suppress_context__
    assert len(provider.requests) == 2  # one bounded retry


async def test_a_transient_error_is_retried(embedder_for: Any, provider: FakeProvider) -> None:
    provider.failures_left = 2
    vectors = await embedder_for("flaky", max_retries=2).embed(["a"], "document")
    assert len(vectors) == 1
    assert len(provider.requests) == 3


async def test_a_wrong_dimension_is_unavailable(embedder_for: Any) -> None:
    with pytest.raises(Unavailable, match=r"returned a vector of dimension 3, expected 4"):
        await embedder_for("wrong-dim").embed(["a", "b"], "document")


async def test_a_missing_vector_is_unavailable(embedder_for: Any) -> None:
    with pytest.raises(Unavailable, match="1 vectors returned for 2 texts"):
        await embedder_for("short-answer").embed(["a", "b"], "document")


async def test_a_timeout_is_unavailable(embedder_for: Any) -> None:
    with pytest.raises(Unavailable, match="Embedding provider failed: timed out"):
        await embedder_for("slow", timeout=0.2).embed(["a"], "document")


async def test_an_unreachable_provider_is_unavailable() -> None:
    closed_port = servers.free_port()
    embedder = OpenAIEmbedder(
        model="good", dim=4, base_url=f"http://127.0.0.1:{closed_port}/v1", max_retries=0
    )
    try:
        with pytest.raises(Unavailable, match="Embedding provider failed: could not connect"):
            await embedder.embed(["a"], "document")
    finally:
        await embedder.close()
