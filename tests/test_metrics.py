"""Prometheus metrics at `/metrics` on the HTTP port: after a few calls the expected series are
there with the expected labels, and the flush queue gauges read the Redis stream correctly."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, MutableMapping
from typing import Any

import httpx
import pytest
import redis.asyncio as aioredis
from prometheus_client.parser import text_string_to_metric_families

from memobase_server.gen.memobase.v1 import user_pb2
from memobase_server.observability.metrics import Metrics, metrics_asgi_app, redis_stream_probe
from tests.conftest import ScriptedLLM, Stack, Stubs

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def scrape(stack: Stack) -> Samples:
    reply = httpx.get(f"{stack.http_url}/metrics", timeout=10)
    assert reply.status_code == 200
    assert reply.headers["content-type"].startswith("text/plain")
    samples: Samples = {}
    for family in text_string_to_metric_families(reply.text):
        for sample in family.samples:
            samples[(sample.name, frozenset(sample.labels.items()))] = sample.value
    return samples


def value(samples: Samples, name: str, **labels: str) -> float:
    """The sample with exactly these labels (bucket `le` aside); 0 when absent."""
    return samples.get((name, frozenset(labels.items())), 0.0)


def series(samples: Samples, name: str) -> list[dict[str, str]]:
    return [dict(labels) for (sample, labels) in samples if sample == name]


def wait_for(check: Callable[[], bool], timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "condition not reached in time"
        time.sleep(0.2)


def _client(stack: Stack, token: str | None = None) -> httpx.Client:
    token = stack.root_token if token is None else token
    return httpx.Client(
        base_url=stack.http_url, headers={"Authorization": f"Bearer {token}"}, timeout=60
    )


def _data(reply: httpx.Response) -> Any:
    body = reply.json()
    assert reply.status_code == 200 and body["errno"] == 0, body
    return body["data"]


def _chat_blob(text: str) -> dict[str, Any]:
    messages = [{"role": "user", "content": text}, {"role": "assistant", "content": "Noted."}]
    return {"blob_type": "chat", "blob_data": {"messages": messages}}


def test_rpc_and_gateway_series(stack: Stack, root: Stubs) -> None:
    before = scrape(stack)
    with _client(stack) as client:
        user_id = _data(client.post("/api/v1/users", json={"data": {"name": "Ada"}}))["id"]
        _data(client.get(f"/api/v1/users/{user_id}"))
        missing = client.get(f"/api/v1/users/{uuid.uuid4()}").json()
        assert missing["errno"] == 404
        assert client.get("/api/v1/no/such/route").status_code == 404
    with _client(stack, token="wrong") as client:
        assert client.get(f"/api/v1/users/{user_id}").status_code == 401
    root.users.GetUser(user_pb2.GetUserRequest(user_id=user_id), metadata=root.metadata, timeout=10)
    after = scrape(stack)

    def delta(name: str, **labels: str) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    get_user = "/memobase.v1.UserService/GetUser"
    rpc = "memobase_rpc_duration_seconds_count"
    assert delta(rpc, method="/memobase.v1.UserService/CreateUser", code="OK") == 1
    assert delta(rpc, method=get_user, code="OK") == 2  # one over REST, one over gRPC
    assert delta(rpc, method=get_user, code="NOT_FOUND") == 1
    assert delta(rpc, method=get_user, code="UNAUTHENTICATED") == 1
    buckets = [s for s in series(after, "memobase_rpc_duration_seconds_bucket") if "le" in s]
    assert any(s["method"] == get_user and s["le"] == "+Inf" for s in buckets)

    requests = "memobase_gateway_requests_total"
    template = "/api/v1/users/{user_id}"
    assert delta(requests, route="/api/v1/users", status="200") == 1
    assert delta(requests, route=template, status="200") == 2  # found, and the errno 404
    assert delta(requests, route=template, status="401") == 1
    assert delta(requests, route="unmatched", status="404") == 1
    assert value(after, requests, route="/metrics", status="200") >= 1
    # routes are templates, never raw paths
    assert all(user_id not in labels["route"] for labels in series(after, requests))
    assert delta("memobase_gateway_request_duration_seconds_count", route=template) == 3

    # the client library's process series are there too
    assert value(after, "process_resident_memory_bytes") > 0


def test_flush_and_llm_series(stack: Stack, llm: ScriptedLLM) -> None:
    before = scrape(stack)
    with _client(stack) as client:
        user_id = _data(client.post("/api/v1/users", json={}))["id"]
        blob = _chat_blob("My name is Ada and I live in Oslo.")
        _data(client.post(f"/api/v1/blobs/insert/{user_id}", json=blob))
        _data(client.post(f"/api/v1/users/buffer/{user_id}/chat?wait_process=true"))
    stats = llm.stats()
    after = scrape(stack)

    def delta(name: str, **labels: str) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    assert delta("memobase_flush_duration_seconds_count", outcome="committed") == 1
    assert stats["calls"], "the flush called the model"
    for step, calls in stats["calls"].items():
        assert delta("memobase_llm_calls_total", step=step, outcome="ok") == calls
        # the tokens the model reported, per step and kind
        assert (
            delta("memobase_llm_tokens_total", step=step, kind="prompt")
            == (stats["prompt_tokens"][step])
        )
        assert (
            delta("memobase_llm_tokens_total", step=step, kind="completion")
            == (stats["completion_tokens"][step])
        )
        assert delta("memobase_llm_call_duration_seconds_count", step=step) == calls

    # a model that never answers in the expected shape: the call and the flush fail
    llm.faults(mode="schema_violation", count=-1, steps=["extract"])
    with _client(stack) as client:
        _data(client.post(f"/api/v1/blobs/insert/{user_id}", json=_chat_blob("I am 36.")))
        failed = client.post(f"/api/v1/users/buffer/{user_id}/chat?wait_process=true").json()
        assert failed["errno"] != 0
    final = scrape(stack)
    assert value(final, "memobase_llm_calls_total", step="extract", outcome="invalid_output") >= 1
    assert value(final, "memobase_llm_invalid_answers_total", step="extract") >= 3
    assert (
        value(final, "memobase_flush_duration_seconds_count", outcome="failed")
        - value(after, "memobase_flush_duration_seconds_count", outcome="failed")
        == 1
    )


def test_background_flush_jobs_and_queue_gauges(stack: Stack, llm: ScriptedLLM) -> None:
    before = scrape(stack)
    assert value(before, "memobase_flush_queue_depth") >= 0
    assert value(before, "memobase_flush_queue_oldest_age_seconds") >= 0
    assert ("memobase_flush_queue_depth", frozenset()) in before
    with _client(stack) as client:
        user_id = _data(client.post("/api/v1/users", json={}))["id"]
        _data(client.post(f"/api/v1/blobs/insert/{user_id}", json=_chat_blob("I like tea.")))
        _data(client.post(f"/api/v1/users/buffer/{user_id}/chat"))  # queued for a worker
    jobs = "memobase_flush_jobs_total"
    done_before = value(before, jobs, reason="manual", outcome="done")
    wait_for(lambda: value(scrape(stack), jobs, reason="manual", outcome="done") > done_before)


@pytest.mark.parametrize("entries", [0, 3])
async def test_queue_probe_reads_the_stream(redis_url: str, entries: int) -> None:
    client: aioredis.Redis = aioredis.Redis.from_url(redis_url, decode_responses=True)
    stream = f"memobase:test:probe:{uuid.uuid4().hex}"
    try:
        now_s, _ = await client.time()
        for i in range(entries):  # ids carry their time: the oldest is 30 s old
            entry_ms = (now_s - 30 + i) * 1000
            await client.xadd(stream, {"job": "{}"}, id=f"{entry_ms}-0")
        stats = await redis_stream_probe(client, stream)()
        assert stats.depth == entries
        if entries:
            assert 29 <= stats.oldest_age_seconds <= 40
        else:
            assert stats.oldest_age_seconds == 0
    finally:
        await client.delete(stream)
        await client.aclose()


async def test_standalone_metrics_app() -> None:
    """The bare `/metrics` app for processes without the gateway (a worker)."""
    metrics = Metrics(process_metrics=False)
    metrics.flush_done("committed", 0.5)
    app = metrics_asgi_app(metrics)
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: MutableMapping[str, Any]) -> None:
        sent.append(dict(message))

    for path in ("/metrics", "/other"):
        sent.clear()
        await app({"type": "http", "method": "GET", "path": path}, receive, send)
        status = sent[0]["status"]
        body = sent[1]["body"].decode()
        if path == "/metrics":
            assert status == 200
            assert 'memobase_flush_duration_seconds_count{outcome="committed"} 1.0' in body
        else:
            assert status == 404
