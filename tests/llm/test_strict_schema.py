"""The strict-schema transform, the schema sketch for prompts, and tolerant JSON extraction."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, Literal

import pytest
from pydantic import BaseModel, Field

from memobase_server.llm.chat import describe_schema, extract_json_object, strict_json_schema
from memobase_server.pipeline.schemas import STEP_SCHEMAS, ExtractResult


def _nodes(node: Any) -> Iterator[dict[str, Any]]:
    if isinstance(node, dict):
        yield node
        for value in node.values():
            yield from _nodes(value)
    elif isinstance(node, list):
        for value in node:
            yield from _nodes(value)


@pytest.mark.parametrize("step", sorted(STEP_SCHEMAS))
def test_step_schemas_become_strict(step: str) -> None:
    schema = strict_json_schema(STEP_SCHEMAS[step])

    assert schema["type"] == "object"
    objects = [n for n in _nodes(schema) if n.get("type") == "object"]
    assert objects
    for node in objects:
        assert node["additionalProperties"] is False
        assert node["required"] == list(node["properties"])
    for node in _nodes(schema):
        assert "default" not in node
        assert "$ref" not in node or len(node) == 1


def test_optional_fields_become_nullable_and_nullable_ones_stay_as_they_are() -> None:
    schema = strict_json_schema(ExtractResult)
    fact = schema["$defs"]["ExtractedFact"]

    assert fact["required"] == ["text", "kind", "when"]
    assert fact["properties"]["text"]["type"] == "string"  # required: unchanged
    kind = fact["properties"]["kind"]
    assert kind["anyOf"] == [
        {"enum": ["info", "event", "schedule"], "type": "string"},
        {"type": "null"},
    ]
    when = fact["properties"]["when"]
    assert when["anyOf"] == [{"type": "string"}, {"type": "null"}]  # not wrapped twice
    assert when["description"] == "Date of the fact, resolved, if known"
    facts = schema["properties"]["facts"]
    assert facts["anyOf"][0] == {"items": {"$ref": "#/$defs/ExtractedFact"}, "type": "array"}


class _Inner(BaseModel):
    x: int


class _Outer(BaseModel):
    inner: _Inner = Field(description="described, so the $ref gets a sibling")
    maybe: _Inner | None = None
    level: Literal["a", "b"] = "a"
    tags: dict[str, str] = Field(default_factory=dict)


def test_refs_with_siblings_are_inlined() -> None:
    schema = strict_json_schema(_Outer)

    inner = schema["properties"]["inner"]
    assert "$ref" not in inner
    assert inner["description"] == "described, so the $ref gets a sibling"
    assert inner["type"] == "object"
    assert inner["additionalProperties"] is False
    assert inner["required"] == ["x"]
    assert schema["properties"]["maybe"]["anyOf"] == [{"$ref": "#/$defs/_Inner"}, {"type": "null"}]
    assert schema["$defs"]["_Inner"]["additionalProperties"] is False
    assert schema["required"] == ["inner", "maybe", "level", "tags"]


def test_the_transform_does_not_touch_the_models_schema() -> None:
    before = ExtractResult.model_json_schema()
    strict_json_schema(ExtractResult)
    assert ExtractResult.model_json_schema() == before


def test_schema_sketches() -> None:
    assert describe_schema(STEP_SCHEMAS["pick_profiles"]) == '{"ids": [integer]|null}'
    assert describe_schema(STEP_SCHEMAS["resummarize"]) == '{"content": string}'
    assert describe_schema(ExtractResult).startswith(
        '{"facts": [{"text": string, "kind": "info"|"event"|"schedule"|null, '
        '"when": string|null}]|null, "profiles": [{"topic": string,'
    )


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ('{"a": 1}', {"a": 1}),
        ('Sure!\n```json\n{"a": {"b": [1, 2]}}\n```\nAnything else?', {"a": {"b": [1, 2]}}),
        ('```\n{"a": 1}\n```', {"a": 1}),
        ('Result: {"s": "braces } { in \\" strings"} done', {"s": 'braces } { in " strings'}),
        ('{not json} then {"a": 2}', {"a": 2}),
        ('[1, 2] and {"a": 3}', {"a": 3}),
    ],
)
def test_tolerant_extraction_finds_the_first_object(text: str, expected: dict[str, Any]) -> None:
    assert extract_json_object(text) == expected


@pytest.mark.parametrize(
    "text",
    ["", "no json here", '{"facts": [{"text": "cut', '{"facts": [{"text": "a"}], "tags": ['],
)
def test_tolerant_extraction_rejects_text_without_a_complete_object(text: str) -> None:
    # A truncated answer never yields one of its inner objects.
    assert extract_json_object(text) is None
