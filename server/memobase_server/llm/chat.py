"""The chat model adapter: one JSON answer per pipeline step from an OpenAI-compatible API.

Three output modes, for providers of different abilities:

- ``json_schema``: structured outputs; the step's pydantic schema, made strict-compatible,
  travels as ``response_format`` and the provider constrains the answer to it;
- ``json_object``: JSON mode; the expected keys are described at the end of the system prompt;
- ``text``: nothing but the prompt; the first JSON object found in the answer is used (code
  fences and surrounding prose are tolerated).

Every answer is validated with the schema. An answer that is not valid is asked for again a
bounded number of times. Transport failures are retried by the openai client itself (its
``max_retries``, with backoff on 429, 5xx and timeouts); when it gives up, LLMUnavailable.
"""

from __future__ import annotations

import copy
import functools
import json
import logging
from typing import Any, Literal

import openai
from openai.types.chat import ChatCompletion, ChatCompletionMessageParam
from openai.types.chat.completion_create_params import ResponseFormat
from pydantic import BaseModel, ValidationError

from memobase_server.domain.tokens import count_tokens
from memobase_server.llm.ports import (
    NO_USAGE,
    LLMOutputError,
    LLMReply,
    LLMUnavailable,
    LLMUsage,
    T,
)

__all__ = [
    "STEP_HEADER",
    "InvalidModelOutput",
    "LLMOutputError",
    "LLMReply",
    "LLMUnavailable",
    "LLMUsage",
    "OpenAIChatModel",
    "OutputMode",
    "build_openai_client",
    "describe_schema",
    "extract_json_object",
    "parse_model_output",
    "strict_json_schema",
]

log = logging.getLogger(__name__)

OutputMode = Literal["json_schema", "json_object", "text"]
STEP_HEADER = "X-Memobase-Step"
_LOGGED_OUTPUT_CHARS = 500
_PLACEHOLDER_API_KEY = "no-key"  # providers without auth (local servers) still need a value

JsonSchema = dict[str, Any]


# --- Strict JSON schemas ------------------------------------------------------------------------


@functools.cache
def model_schema(model: type[BaseModel]) -> JsonSchema:
    """The model's JSON schema, made once per model class (pydantic rebuilds it on every call).
    Shared: copy it before changing it."""
    return model.model_json_schema()


def strict_json_schema(model: type[BaseModel]) -> JsonSchema:
    """The model's JSON schema in the subset OpenAI's strict structured outputs accept.

    Every object gets ``additionalProperties: false`` and lists all its properties as required;
    a property that was optional (it has a default) and did not already accept null becomes
    nullable, so the model can leave it out by answering null (the null is dropped before
    validation and the default applies). ``default`` keywords are removed, and a ``$ref`` that
    has sibling keywords (a description) is inlined, since strict mode rejects both.
    """
    schema = copy.deepcopy(model_schema(model))
    return _strictify(schema, schema)


# Per step schema, made once: every request sends it, and nothing changes it.
_shared_strict_schema = functools.cache(strict_json_schema)


def _strictify(node: JsonSchema, root: JsonSchema) -> JsonSchema:
    defs = node.get("$defs")
    if isinstance(defs, dict):
        for name, definition in defs.items():
            defs[name] = _strictify(definition, root)

    ref = node.get("$ref")
    if isinstance(ref, str) and len(node) > 1:
        merged = {**copy.deepcopy(_resolve(ref, root)), **node}
        merged.pop("$ref")
        return _strictify(merged, root)

    node.pop("default", None)

    properties = node.get("properties")
    if node.get("type") == "object" or isinstance(properties, dict):
        node["additionalProperties"] = False
        props: dict[str, JsonSchema] = properties if isinstance(properties, dict) else {}
        required = set(node.get("required", []))
        for key, sub in list(props.items()):
            strict = _strictify(sub, root)
            if key not in required and not _accepts_null(strict, root):
                strict = _nullable(strict)
            props[key] = strict
        node["properties"] = props
        node["required"] = list(props)

    items = node.get("items")
    if isinstance(items, dict):
        node["items"] = _strictify(items, root)

    for keyword in ("anyOf", "oneOf"):
        variants = node.get(keyword)
        if isinstance(variants, list):
            node[keyword] = [_strictify(v, root) for v in variants if isinstance(v, dict)]

    all_of = node.get("allOf")
    if isinstance(all_of, list):
        if len(all_of) == 1 and isinstance(all_of[0], dict):
            node.pop("allOf")
            return _strictify({**all_of[0], **node}, root)
        node["allOf"] = [_strictify(v, root) for v in all_of if isinstance(v, dict)]
    return node


def _resolve(ref: str, root: JsonSchema) -> JsonSchema:
    if not ref.startswith("#/"):
        raise ValueError(f"unsupported $ref {ref!r}")
    node: Any = root
    for part in ref[2:].split("/"):
        node = node[part]
    if not isinstance(node, dict):
        raise ValueError(f"$ref {ref!r} does not point to a schema")
    return node


def _accepts_null(node: JsonSchema, root: JsonSchema) -> bool:
    ref = node.get("$ref")
    if isinstance(ref, str):
        return _accepts_null(_resolve(ref, root), root)
    kind = node.get("type")
    if kind == "null" or (isinstance(kind, list) and "null" in kind):
        return True
    if "enum" in node and None in node["enum"]:
        return True
    return any(
        isinstance(variant, dict) and _accepts_null(variant, root)
        for keyword in ("anyOf", "oneOf")
        for variant in node.get(keyword, [])
    )


_ANNOTATIONS = ("title", "description")


def _nullable(node: JsonSchema) -> JsonSchema:
    inner = {k: v for k, v in node.items() if k not in _ANNOTATIONS}
    outer: JsonSchema = {k: node[k] for k in _ANNOTATIONS if k in node}
    outer["anyOf"] = [inner, {"type": "null"}]
    return outer


def _drop_null_defaults(data: Any, node: JsonSchema, root: JsonSchema) -> Any:
    """Removes the nulls the strict schema allowed where the model's own schema (`node`, from
    `model_json_schema()`) has a default instead, so validation applies the default."""
    ref = node.get("$ref")
    if isinstance(ref, str):
        return _drop_null_defaults(data, _resolve(ref, root), root)
    if isinstance(data, dict):
        properties = node.get("properties")
        if isinstance(properties, dict):
            required = set(node.get("required", []))
            for key, sub in properties.items():
                if key not in data or not isinstance(sub, dict):
                    continue
                if data[key] is None and key not in required and not _accepts_null(sub, root):
                    del data[key]
                else:
                    data[key] = _drop_null_defaults(data[key], sub, root)
            return data
    if isinstance(data, list):
        items = node.get("items")
        if isinstance(items, dict):
            return [_drop_null_defaults(item, items, root) for item in data]
        return data
    for keyword in ("anyOf", "oneOf", "allOf"):
        for variant in node.get(keyword, []):
            if isinstance(variant, dict) and not _accepts_null(variant, root):
                data = _drop_null_defaults(data, variant, root)
    return data


def describe_schema(model: type[BaseModel]) -> str:
    """A compact sketch of the JSON a schema expects, for prompts without structured outputs:
    ``{"facts": [{"text": string, "kind": "info"|"event", "when": string|null}]}``."""
    schema = strict_json_schema(model)
    return _sketch(schema, schema)


def _sketch(node: JsonSchema, root: JsonSchema) -> str:
    ref = node.get("$ref")
    if isinstance(ref, str):
        return _sketch(_resolve(ref, root), root)
    if "enum" in node:
        return "|".join(json.dumps(value, ensure_ascii=False) for value in node["enum"])
    if "const" in node:
        return json.dumps(node["const"], ensure_ascii=False)
    for keyword in ("anyOf", "oneOf"):
        if keyword in node:
            return "|".join(_sketch(variant, root) for variant in node[keyword])
    kind = node.get("type")
    if isinstance(kind, list):
        return "|".join(_sketch({**node, "type": k}, root) for k in kind)
    if kind == "object" or "properties" in node:
        fields = ", ".join(
            f"{json.dumps(key)}: {_sketch(sub, root)}"
            for key, sub in node.get("properties", {}).items()
        )
        return "{" + fields + "}"
    if kind == "array":
        items = node.get("items")
        return "[" + (_sketch(items, root) if isinstance(items, dict) else "any") + "]"
    return {"integer": "integer", "number": "number", "boolean": "boolean", "null": "null"}.get(
        str(kind), "string"
    )


# --- Tolerant parsing ---------------------------------------------------------------------------


def extract_json_object(text: str) -> dict[str, Any] | None:
    """The first JSON object in free text: code fences, prose around it and stray braces
    are tolerated. None when the text holds no complete object."""
    for candidate in (*_fenced_blocks(text), text):
        found = _first_object(candidate)
        if found is not None:
            return found
    return None


def _fenced_blocks(text: str) -> list[str]:
    blocks = []
    parts = text.split("```")
    for inside in parts[1:-1:2]:  # the text between an opening and a closing fence
        first_line, _, rest = inside.partition("\n")
        blocks.append(rest if first_line.strip().isalpha() or not first_line.strip() else inside)
    return blocks


def _first_object(text: str) -> dict[str, Any] | None:
    start = text.find("{")
    while start != -1:
        end = _balanced_end(text, start)
        if end is None:
            return None  # the rest never closes: every later "{" is inside this one
        try:
            value = json.loads(text[start : end + 1])
        except ValueError:
            value = None
        if isinstance(value, dict):
            return value
        start = text.find("{", start + 1)
    return None


def _balanced_end(text: str, start: int) -> int | None:
    depth = 0
    in_string = False
    escaped = False
    for index in range(start, len(text)):
        char = text[index]
        if in_string:
            if escaped:
                escaped = False
            elif char == "\\":
                escaped = True
            elif char == '"':
                in_string = False
        elif char == '"':
            in_string = True
        elif char == "{":
            depth += 1
        elif char == "}":
            depth -= 1
            if depth == 0:
                return index
    return None


# --- The client ---------------------------------------------------------------------------------


def build_openai_client(
    base_url: str | None,
    api_key: str,
    *,
    timeout_s: float,
    max_retries: int,
    default_headers: dict[str, str] | None = None,
    default_query: dict[str, object] | None = None,
) -> openai.AsyncOpenAI:
    """The client for one OpenAI-compatible provider. The client retries 429, 5xx, connection
    errors and timeouts `max_retries` times with exponential backoff (honouring Retry-After);
    `timeout_s` bounds each attempt. An empty key is replaced by a placeholder for providers
    that need none."""
    return openai.AsyncOpenAI(
        api_key=api_key or _PLACEHOLDER_API_KEY,
        base_url=base_url,
        timeout=timeout_s,
        max_retries=max_retries,
        default_headers=default_headers,
        default_query=default_query,
    )


class InvalidModelOutput(ValueError):
    """An answer that is not the JSON the schema expects; `reason` never quotes the answer."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def parse_model_output(content: str | None, schema: type[T]) -> T:
    """Validates a model's answer: JSON first, else the first JSON object in the text (code
    fences and prose tolerated); nulls where the schema has a default take the default."""
    if not content or not content.strip():
        raise InvalidModelOutput("empty answer")
    data: Any
    try:
        data = json.loads(content)
    except ValueError:
        data = extract_json_object(content)
        if data is None:
            raise InvalidModelOutput("no JSON object in the answer") from None
    if not isinstance(data, dict):
        raise InvalidModelOutput("the answer is not a JSON object")
    original = model_schema(schema)
    data = _drop_null_defaults(data, original, original)
    try:
        return schema.model_validate(data)
    except ValidationError as exc:
        fields = sorted({".".join(str(p) for p in error["loc"]) for error in exc.errors()})
        where = ", ".join(fields[:5]) or "(root)"
        raise InvalidModelOutput(f"schema violation at {where}") from None


class OpenAIChatModel:
    """ChatModel over `openai.AsyncOpenAI` (any OpenAI-compatible chat completions API)."""

    def __init__(
        self,
        client: openai.AsyncOpenAI,
        *,
        output_mode: OutputMode = "json_schema",
        temperature: float = 0.2,
        max_tokens: int = 1024,
        invalid_output_retries: int = 2,
    ) -> None:
        if invalid_output_retries < 0:
            raise ValueError("invalid_output_retries must not be negative")
        self._client = client
        self._mode: OutputMode = output_mode
        self._temperature = temperature
        self._max_tokens = max_tokens
        self._invalid_output_retries = invalid_output_retries

    @property
    def output_mode(self) -> OutputMode:
        return self._mode

    async def complete(
        self, *, step: str, model: str, system: str, user: str, schema: type[T]
    ) -> LLMReply[T]:
        strict = _shared_strict_schema(schema)
        response_format: ResponseFormat | None = None
        if self._mode == "json_schema":
            response_format = {
                "type": "json_schema",
                "json_schema": {"name": step, "schema": strict, "strict": True},
            }
        else:
            if self._mode == "json_object":
                response_format = {"type": "json_object"}
            system = (
                f"{system}\n\nAnswer with one JSON object only, shaped like this:\n"
                f"{_sketch(strict, strict)}"
            )
        messages: list[ChatCompletionMessageParam] = [
            {"role": "system", "content": system},
            {"role": "user", "content": user},
        ]
        usage = NO_USAGE
        attempts_allowed = 1 + self._invalid_output_retries
        for attempt in range(1, attempts_allowed + 1):
            response = await self._request(step, model, messages, response_format, usage)
            content = _content_of(response)
            usage = usage + _usage_of(response, system, user, content)
            try:
                value = parse_model_output(content, schema)
            except InvalidModelOutput as invalid:
                log.warning(
                    "LLM output for step %s is invalid (attempt %d of %d): %s",
                    step,
                    attempt,
                    attempts_allowed,
                    invalid.reason,
                )
                log.debug(
                    "invalid LLM output for step %s: %r",
                    step,
                    (content or "")[:_LOGGED_OUTPUT_CHARS],
                )
                continue
            return LLMReply(value=value, usage=usage, attempts=attempt)
        raise LLMOutputError(
            f"{step}: the model's output did not match the expected format "
            f"after {attempts_allowed} attempts",
            usage=usage,
            attempts=attempts_allowed,
        )

    async def _request(
        self,
        step: str,
        model: str,
        messages: list[ChatCompletionMessageParam],
        response_format: ResponseFormat | None,
        usage_so_far: LLMUsage,
    ) -> ChatCompletion:
        try:
            return await self._client.chat.completions.create(
                model=model,
                messages=messages,
                temperature=self._temperature,
                max_tokens=self._max_tokens,
                response_format=openai.omit if response_format is None else response_format,
                extra_headers={STEP_HEADER: step},
            )
        except openai.APITimeoutError as exc:
            reason = "LLM provider timed out"
            raise_from: Exception = exc
        except openai.APIConnectionError as exc:
            reason = "LLM provider unreachable"
            raise_from = exc
        except openai.APIStatusError as exc:
            reason = f"LLM provider error: HTTP {exc.status_code}"
            if exc.status_code == 429:
                reason += " (rate limited)"
            raise_from = exc
        except (openai.APIError, json.JSONDecodeError) as exc:
            # APIResponseValidationError, or a body that is not JSON (the client lets the
            # JSONDecodeError of the stdlib through)
            reason = "LLM provider error: invalid response"
            raise_from = exc
        log.warning("LLM call for step %s failed: %s", step, reason)
        raise LLMUnavailable(f"{step}: {reason}", usage=usage_so_far) from raise_from


def _content_of(response: ChatCompletion) -> str | None:
    if not response.choices:
        return None
    message = response.choices[0].message
    return message.content if message is not None else None


def _usage_of(response: ChatCompletion, system: str, user: str, content: str | None) -> LLMUsage:
    reported = response.usage
    if reported is not None:
        return LLMUsage(reported.prompt_tokens or 0, reported.completion_tokens or 0)
    return LLMUsage(count_tokens(system) + count_tokens(user), count_tokens(content or ""))
