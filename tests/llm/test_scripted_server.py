"""The scripted server over HTTP: embeddings and models through the openai client, the
control routes, and request details a real provider would also see."""

from __future__ import annotations

import asyncio
import math
import signal
import sys

import httpx
import openai
import pytest

from memobase_server.devtools.scripted_llm import ScriptedLLMServer
from memobase_server.devtools.scripted_llm.vectors import embed_text
from tests.llm.conftest import ClientFactory


def _cosine(a: list[float], b: list[float]) -> float:
    dot = sum(x * y for x, y in zip(a, b, strict=True))
    return dot / (math.sqrt(sum(x * x for x in a)) * math.sqrt(sum(y * y for y in b)))


async def test_embeddings_with_the_clients_default_encoding(
    make_client: ClientFactory, scripted: ScriptedLLMServer
) -> None:
    client = make_client()
    texts = ["The user loves jazz music", "Jazz music is what the user loves", "Tax deadline"]

    response = await client.embeddings.create(model="text-embedding-3-small", input=texts)

    # The client asks for base64 unless told otherwise, and decodes it to floats.
    (request,) = scripted.app.state.requests
    assert request.body["encoding_format"] == "base64"
    assert [item.index for item in response.data] == [0, 1, 2]
    assert all(item.object == "embedding" for item in response.data)
    first, second, third = (item.embedding for item in response.data)
    assert len(first) == 1536
    assert first == pytest.approx(embed_text(texts[0]), abs=1e-6)
    assert _cosine(first, second) > 0.5
    assert abs(_cosine(first, third)) < 0.2
    assert response.usage.prompt_tokens > 0
    assert response.model == "text-embedding-3-small"
    assert scripted.app.state.stats.embedding_calls == 1


async def test_embeddings_as_floats_with_dimensions(make_client: ClientFactory) -> None:
    client = make_client()

    async def embed(texts: str | list[str] | list[list[int]]) -> list[float]:
        response = await client.embeddings.create(
            model="m", input=texts, dimensions=64, encoding_format="float"
        )
        return response.data[0].embedding

    one, two, tokens = await embed("same text"), await embed(["same text"]), await embed([[9906]])

    assert len(one) == 64
    assert one == two
    assert abs(sum(x * x for x in one) - 1) < 1e-6
    assert len(tokens) == 64


async def test_embedding_requests_a_provider_would_refuse(make_client: ClientFactory) -> None:
    client = make_client()
    with pytest.raises(openai.BadRequestError, match="empty string"):
        await client.embeddings.create(model="m", input=[""])
    with pytest.raises(openai.BadRequestError, match="dimensions"):
        await client.embeddings.create(model="m", input="x", dimensions=0)


async def test_embedding_faults(
    make_client: ClientFactory, control: httpx.AsyncClient, scripted: ScriptedLLMServer
) -> None:
    client = make_client()
    await control.post("/_scripted/faults", json={"mode": "http_500", "endpoint": "embeddings"})
    with pytest.raises(openai.InternalServerError):
        await client.embeddings.create(model="m", input="x", encoding_format="float")

    await control.post(
        "/_scripted/faults", json={"mode": "schema_violation", "endpoint": "embeddings"}
    )
    wrong = await client.embeddings.create(
        model="m", input="x", dimensions=8, encoding_format="float"
    )
    assert len(wrong.data[0].embedding) == 7

    await control.post("/_scripted/faults", json={"mode": "malformed_json", "count": 1})
    with pytest.raises(ValueError):  # the client lets json's JSONDecodeError through
        await client.embeddings.create(model="m", input="x", encoding_format="float")
    assert scripted.app.state.stats.embedding_calls == 3


async def test_models(make_client: ClientFactory) -> None:
    models = [model.id async for model in make_client().models.list()]
    assert models == ["scripted-llm"]


async def test_step_falls_back_to_the_schema_name_then_unknown(
    make_client: ClientFactory, scripted: ScriptedLLMServer
) -> None:
    client = make_client()
    named = await client.chat.completions.create(
        model="m",
        messages=[{"role": "user", "content": "Limit: 1 words\nContent: hello world"}],
        response_format={
            "type": "json_schema",
            "json_schema": {"name": "resummarize", "schema": {}, "strict": True},
        },
    )
    unnamed = await client.chat.completions.create(
        model="m",
        messages=[{"role": "user", "content": "hi"}],
        response_format={"type": "json_object"},
    )
    prose = await client.chat.completions.create(
        model="m", messages=[{"role": "user", "content": "hi"}]
    )

    assert named.choices[0].message.content == '{"content": "hello"}'
    assert named.object == "chat.completion"
    assert named.choices[0].finish_reason == "stop"
    assert named.usage is not None and named.usage.total_tokens > 0
    assert unnamed.choices[0].message.content == "{}"
    assert prose.choices[0].message.content is not None
    assert "```json\n{}\n```" in prose.choices[0].message.content
    assert scripted.app.state.stats.calls == {"resummarize": 1, "unknown": 2}


async def test_fault_control_routes(control: httpx.AsyncClient) -> None:
    set_ = await control.post(
        "/_scripted/faults", json={"mode": "http_429", "count": 2, "steps": ["extract"]}
    )
    assert set_.status_code == 200
    assert set_.json()["mode"] == "http_429"
    assert set_.json()["remaining"] == 2
    assert (await control.get("/_scripted/faults")).json()["steps"] == ["extract"]

    reset = await control.delete("/_scripted/faults")
    assert reset.json()["mode"] == "none"

    bad = await control.post("/_scripted/faults", json={"mode": "explode"})
    assert bad.status_code == 400
    assert "mode" in bad.json()["error"]["message"]
    extra = await control.post("/_scripted/faults", json={"mode": "none", "colour": "red"})
    assert extra.status_code == 400
    not_json = await control.post("/_scripted/faults", content=b"{")
    assert not_json.status_code == 400


async def test_unknown_routes_and_methods(control: httpx.AsyncClient) -> None:
    missing = await control.get("/v1/nothing")
    assert missing.status_code == 404
    assert missing.json()["error"]["code"] == "not_found"
    assert (await control.get("/v1/chat/completions")).status_code == 405


async def test_429_carries_retry_after(control: httpx.AsyncClient) -> None:
    await control.post(
        "/_scripted/faults", json={"mode": "http_429", "count": 1, "retry_after_ms": 5}
    )
    response = await control.post(
        "/v1/chat/completions", json={"model": "m", "messages": [{"role": "user", "content": ""}]}
    )
    assert response.status_code == 429
    assert response.headers["retry-after-ms"] == "5"
    assert response.json()["error"]["code"] == "rate_limit_exceeded"


async def test_runs_as_a_module() -> None:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "memobase_server.devtools.scripted_llm",
        "--port",
        "0",
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.DEVNULL,
    )
    try:
        assert process.stdout is not None
        line = (await asyncio.wait_for(process.stdout.readline(), timeout=20)).decode()
        base_url = line.rsplit(" ", 1)[-1].strip()
        assert base_url.startswith("http://127.0.0.1:")
        async with httpx.AsyncClient(timeout=5) as client:
            models = (await client.get(f"{base_url}/models")).json()
        assert models["data"][0]["id"] == "scripted-llm"
    finally:
        process.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(process.wait(), timeout=10) == 0
