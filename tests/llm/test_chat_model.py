"""OpenAIChatModel through the real openai client against the scripted server."""

from __future__ import annotations

import logging
import time
from typing import Any, get_args

import httpx
import pytest
from pydantic import BaseModel

from memobase_server.devtools.scripted_llm import ScriptedLLMServer
from memobase_server.domain.errors import Unavailable
from memobase_server.domain.tokens import count_tokens
from memobase_server.llm.chat import (
    LLMOutputError,
    LLMUnavailable,
    OpenAIChatModel,
    OutputMode,
)
from memobase_server.llm.ports import ChatModel
from memobase_server.pipeline.schemas import (
    STEP_SCHEMAS,
    ExtractResult,
    MergeResult,
    OrganizeResult,
    PickResult,
    ResummarizeResult,
)
from tests.llm import prompts
from tests.llm.conftest import ClientFactory

MODES: tuple[OutputMode, ...] = get_args(OutputMode)
SYSTEM = "You maintain a user's long-term memory."


async def _complete(model: ChatModel, step: str, **kwargs: Any) -> Any:
    return await model.complete(
        step=step,
        model="gpt-4o-mini",
        system=SYSTEM,
        user=prompts.BY_STEP.get(step, "hello"),
        schema=STEP_SCHEMAS.get(step, ExtractResult),
        **kwargs,
    )


async def _set_faults(control: httpx.AsyncClient, **faults: Any) -> None:
    response = await control.post("/_scripted/faults", json=faults)
    assert response.status_code == 200, response.text


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("step", sorted(STEP_SCHEMAS))
async def test_every_step_in_every_mode_returns_a_valid_model(
    make_client: ClientFactory, scripted: ScriptedLLMServer, step: str, mode: OutputMode
) -> None:
    model = OpenAIChatModel(make_client(), output_mode=mode)

    reply = await _complete(model, step)

    assert isinstance(reply.value, STEP_SCHEMAS[step])
    assert reply.attempts == 1
    assert reply.usage.prompt_tokens > 0
    assert reply.usage.completion_tokens > 0
    stats = scripted.app.state.stats
    assert stats.calls == {step: 1}
    assert reply.usage.prompt_tokens == stats.prompt_tokens[step]
    assert reply.usage.completion_tokens == stats.completion_tokens[step]


async def test_scripted_answers_arrive_parsed(make_client: ClientFactory) -> None:
    model = OpenAIChatModel(make_client())

    extract = (await _complete(model, "extract")).value
    merge = (await _complete(model, "merge")).value
    organize = (await _complete(model, "organize")).value
    resummarize = (await _complete(model, "resummarize")).value
    pick = (await _complete(model, "pick_profiles")).value

    assert isinstance(extract, ExtractResult)
    assert [f.when for f in extract.facts] == ["2024/05/01", "2024/05/02", "2024/05/03"]
    assert extract.facts[2].text == "我喜欢喝茶"
    assert {(p.topic, p.sub_topic): p.memo for p in extract.profiles} == {
        ("basic_info", "name"): "Ada Lovelace",
        ("basic_info", "age"): "36",
        ("contact_info", "city"): "London",
        ("work", "company"): "Analytical Engines",
        ("work", "title"): "mathematician",
        ("interest", "music"): "jazz music",
    }
    assert [(t.tag, t.value) for t in extract.tags] == [("mood", "curious"), ("mood", "great")]
    assert isinstance(merge, MergeResult)
    assert [(d.id, d.action, d.content) for d in merge.decisions] == [
        (1, "abort", ""),
        (2, "append", "jazz; blues"),
        (3, "update", "mathematician"),
        (4, "update", "London"),
    ]
    assert isinstance(organize, OrganizeResult)
    assert [s.sub_topic for s in organize.slots] == ["music", "foods"]
    assert isinstance(resummarize, ResummarizeResult)
    assert resummarize.content == "Ada plays the piano"
    assert isinstance(pick, PickResult)
    assert pick.ids == [1, 2]


async def test_request_shapes_per_mode(
    make_client: ClientFactory, scripted: ScriptedLLMServer
) -> None:
    client = make_client()
    for mode in MODES:
        await _complete(OpenAIChatModel(client, output_mode=mode, max_tokens=321), "merge")

    schema_request, object_request, text_request = scripted.app.state.requests
    for request in (schema_request, object_request, text_request):
        assert request.headers["x-memobase-step"] == "merge"
        assert request.body["max_tokens"] == 321
        assert [m["role"] for m in request.body["messages"]] == ["system", "user"]
        assert request.body["messages"][1]["content"] == prompts.MERGE
    response_format = schema_request.body["response_format"]
    assert response_format["type"] == "json_schema"
    assert response_format["json_schema"]["name"] == "merge"
    assert response_format["json_schema"]["strict"] is True
    assert response_format["json_schema"]["schema"]["additionalProperties"] is False
    assert schema_request.body["messages"][0]["content"] == SYSTEM
    assert object_request.body["response_format"] == {"type": "json_object"}
    assert "response_format" not in text_request.body
    for request in (object_request, text_request):
        system = request.body["messages"][0]["content"]
        assert system.startswith(SYSTEM)
        assert '"decisions": [{"id": integer, "action": "update"|"append"|"abort"' in system


async def test_usage_is_summed_over_attempts(
    make_client: ClientFactory, control: httpx.AsyncClient, scripted: ScriptedLLMServer
) -> None:
    await _set_faults(control, mode="schema_violation", count=1)
    reply = await _complete(OpenAIChatModel(make_client()), "organize")

    assert reply.attempts == 2
    stats = scripted.app.state.stats
    assert stats.calls == {"organize": 2}
    assert reply.usage.prompt_tokens == stats.prompt_tokens["organize"]
    assert reply.usage.completion_tokens == stats.completion_tokens["organize"]


@pytest.mark.parametrize("fault", ["malformed_json", "schema_violation"])
@pytest.mark.parametrize("mode", MODES)
async def test_one_invalid_output_is_retried(
    make_client: ClientFactory, control: httpx.AsyncClient, fault: str, mode: OutputMode
) -> None:
    await _set_faults(control, mode=fault, count=1)

    reply = await _complete(OpenAIChatModel(make_client(), output_mode=mode), "extract")

    assert reply.attempts == 2
    assert len(reply.value.facts) == 3


@pytest.mark.parametrize("fault", ["malformed_json", "schema_violation"])
async def test_output_never_valid_raises_output_error(
    make_client: ClientFactory,
    control: httpx.AsyncClient,
    scripted: ScriptedLLMServer,
    caplog: pytest.LogCaptureFixture,
    fault: str,
) -> None:
    await _set_faults(control, mode=fault, count=-1)
    model = OpenAIChatModel(make_client(), invalid_output_retries=2)

    with (
        caplog.at_level(logging.DEBUG, logger="memobase_server.llm.chat"),
        pytest.raises(LLMOutputError) as raised,
    ):
        await _complete(model, "resummarize")

    error = raised.value
    assert error.message == (
        "resummarize: the model's output did not match the expected format after 3 attempts"
    )
    assert error.attempts == 3
    assert error.usage.prompt_tokens == scripted.app.state.stats.prompt_tokens["resummarize"]
    assert scripted.app.state.stats.calls == {"resummarize": 3}
    # The raw output stays in debug logs; warnings name the problem only.
    warnings = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(warnings) == 3
    assert not any("unexpected" in message or "Ada" in message for message in warnings)
    assert any(
        "unexpected" in r.getMessage() or "Ada" in r.getMessage()
        for r in caplog.records
        if r.levelno == logging.DEBUG
    )


async def test_zero_output_retries_means_one_attempt(
    make_client: ClientFactory, control: httpx.AsyncClient
) -> None:
    await _set_faults(control, mode="malformed_json", count=1)
    with pytest.raises(LLMOutputError, match="after 1 attempts"):
        await _complete(OpenAIChatModel(make_client(), invalid_output_retries=0), "merge")


@pytest.mark.parametrize(("fault", "status"), [("http_500", 500), ("http_429", 429)])
async def test_provider_errors_raise_unavailable_after_the_client_retries(
    make_client: ClientFactory,
    control: httpx.AsyncClient,
    scripted: ScriptedLLMServer,
    fault: str,
    status: int,
) -> None:
    await _set_faults(control, mode=fault, count=-1, retry_after_ms=20)
    model = OpenAIChatModel(make_client(max_retries=1))

    with pytest.raises(LLMUnavailable) as raised:
        await _complete(model, "extract")

    assert isinstance(raised.value, Unavailable)
    assert raised.value.message.startswith(f"extract: LLM provider error: HTTP {status}")
    assert "sk-test" not in raised.value.message
    assert "127.0.0.1" not in raised.value.message
    assert scripted.app.state.stats.calls == {"extract": 2}  # one try, one retry


async def test_a_transient_provider_error_is_absorbed_by_the_client(
    make_client: ClientFactory, control: httpx.AsyncClient, scripted: ScriptedLLMServer
) -> None:
    await _set_faults(control, mode="http_500", count=1, retry_after_ms=20)
    reply = await _complete(OpenAIChatModel(make_client(max_retries=1)), "pick_profiles")
    assert reply.value.ids == [1, 2]
    assert reply.attempts == 1
    assert scripted.app.state.stats.calls == {"pick_profiles": 2}


async def test_timeout_raises_unavailable(
    make_client: ClientFactory, control: httpx.AsyncClient
) -> None:
    await _set_faults(control, mode="timeout", count=-1, timeout_s=30)
    model = OpenAIChatModel(make_client(timeout_s=0.5, max_retries=1))

    started = time.monotonic()
    with pytest.raises(LLMUnavailable) as raised:
        await _complete(model, "merge")

    assert raised.value.message == "merge: LLM provider timed out"
    assert 1.0 <= time.monotonic() - started < 5


async def test_unreachable_provider_raises_unavailable() -> None:
    from memobase_server.llm.chat import build_openai_client

    client = build_openai_client("http://127.0.0.1:9/v1", "sk-secret", timeout_s=1, max_retries=0)
    try:
        with pytest.raises(LLMUnavailable) as raised:
            await _complete(OpenAIChatModel(client), "merge")
    finally:
        await client.close()
    assert raised.value.message == "merge: LLM provider unreachable"


async def test_a_body_that_is_not_json_raises_unavailable(
    make_client: ClientFactory, control: httpx.AsyncClient
) -> None:
    await _set_faults(control, mode="malformed_body", count=1)
    with pytest.raises(LLMUnavailable) as raised:
        await _complete(OpenAIChatModel(make_client()), "merge")
    assert raised.value.message == "merge: LLM provider error: invalid response"


async def test_latency_applies(make_client: ClientFactory, control: httpx.AsyncClient) -> None:
    await _set_faults(control, latency_ms=300)
    model = OpenAIChatModel(make_client())

    started = time.monotonic()
    await _complete(model, "resummarize")
    assert time.monotonic() - started >= 0.3


async def test_faults_can_target_steps(
    make_client: ClientFactory, control: httpx.AsyncClient, scripted: ScriptedLLMServer
) -> None:
    await _set_faults(control, mode="malformed_json", count=-1, steps=["merge"], endpoint="chat")
    model = OpenAIChatModel(make_client(), invalid_output_retries=1)

    assert (await _complete(model, "organize")).attempts == 1
    with pytest.raises(LLMOutputError):
        await _complete(model, "merge")
    assert scripted.app.state.stats.calls == {"organize": 1, "merge": 2}


async def test_stats_over_http(make_client: ClientFactory, control: httpx.AsyncClient) -> None:
    model = OpenAIChatModel(make_client())
    first = await _complete(model, "extract")
    second = await _complete(model, "extract")
    await _complete(model, "merge")

    stats = (await control.get("/_scripted/stats")).json()
    assert stats["calls"] == {"extract": 2, "merge": 1}
    assert stats["prompt_tokens"]["extract"] == (
        first.usage.prompt_tokens + second.usage.prompt_tokens
    )
    assert stats["embedding_calls"] == 0

    assert (await control.delete("/_scripted/stats")).status_code == 200
    assert (await control.get("/_scripted/stats")).json()["calls"] == {}


async def test_usage_is_counted_locally_when_the_provider_reports_none() -> None:
    from openai.types.chat import ChatCompletion

    from memobase_server.llm.chat import _usage_of

    response = ChatCompletion.model_validate(
        {
            "id": "x",
            "object": "chat.completion",
            "created": 0,
            "model": "m",
            "choices": [
                {
                    "index": 0,
                    "finish_reason": "stop",
                    "message": {"role": "assistant", "content": '{"ids": [1]}'},
                }
            ],
        }
    )
    usage = _usage_of(response, "system prompt", "user prompt", '{"ids": [1]}')
    assert usage.prompt_tokens == count_tokens("system prompt") + count_tokens("user prompt")
    assert usage.completion_tokens == count_tokens('{"ids": [1]}')


class _Nested(BaseModel):
    label: str
    score: int = 0


class _WithDefaults(BaseModel):
    items: list[_Nested] = []
    note: str | None = None
    kind: str = "plain"


def test_nulls_for_defaulted_fields_fall_back_to_defaults() -> None:
    from memobase_server.llm.chat import parse_model_output

    content = '{"items": [{"label": "a", "score": null}], "note": null, "kind": null}'
    value = parse_model_output(content, _WithDefaults)
    assert value == _WithDefaults(items=[_Nested(label="a")], note=None, kind="plain")


def test_a_null_where_no_default_exists_is_a_violation() -> None:
    from memobase_server.llm.chat import InvalidModelOutput, parse_model_output

    with pytest.raises(InvalidModelOutput, match=r"schema violation at items\.0\.label"):
        parse_model_output('{"items": [{"label": null}]}', _WithDefaults)
