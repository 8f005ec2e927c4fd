"""The scripted OpenAI-compatible server: a raw ASGI app answering chat completions,
embeddings and the model list deterministically, with faults and statistics controlled over
HTTP (`/_scripted/faults`, `/_scripted/stats`) so tests in another process can drive it."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import logging
import time
from collections.abc import Awaitable, Callable, MutableMapping
from dataclasses import dataclass
from typing import Any, TypeAlias

from pydantic import ValidationError

from memobase_server.devtools.scripted_llm import steps, vectors
from memobase_server.devtools.scripted_llm.state import (
    Decision,
    FaultConfig,
    RecordedRequest,
    ScriptedState,
)
from memobase_server.domain.tokens import count_tokens, encoding
from memobase_server.transport.http_server import HttpServer

log = logging.getLogger(__name__)

Scope: TypeAlias = MutableMapping[str, Any]
Message: TypeAlias = MutableMapping[str, Any]
Receive: TypeAlias = Callable[[], Awaitable[Message]]
Send: TypeAlias = Callable[[Message], Awaitable[None]]

STEP_HEADER = "x-memobase-step"
DEFAULT_MODEL = "scripted-llm"
_MAX_BODY = 32 * 1024 * 1024
_MALFORMED_BODY = b'{"object": "list", "data": [{"object": "embedd'
_SECRET_HEADERS = frozenset({"authorization", "api-key", "x-api-key"})
_JSON_MODES = frozenset({"json_schema", "json_object"})


class _HttpError(Exception):
    def __init__(
        self,
        status: int,
        message: str,
        *,
        kind: str = "invalid_request_error",
        code: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.kind = kind
        self.code = code
        self.headers = headers or {}


class _ClientGone(Exception):
    """The client disconnected (or the server is closing) while the answer was held back."""


class ScriptedLLM:
    """The ASGI app and its state (`state.faults`, `state.stats`)."""

    def __init__(self, *, model_name: str = DEFAULT_MODEL) -> None:
        self.state = ScriptedState()
        self.model_name = model_name
        self._ids = itertools.count(1)
        self._closing = asyncio.Event()

    def close(self) -> None:
        """Releases requests held by latency or `timeout` faults, so the server stops at once."""
        self._closing.set()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await _lifespan(receive, send)
            return
        if scope["type"] != "http":
            return
        try:
            await self._dispatch(scope, receive, send)
        except _ClientGone:
            return
        except _HttpError as error:
            body = {
                "error": {
                    "message": error.message,
                    "type": error.kind,
                    "param": None,
                    "code": error.code,
                }
            }
            await _send_json(send, error.status, body, error.headers)

    async def _dispatch(self, scope: Scope, receive: Receive, send: Send) -> None:
        method = scope["method"]
        path = scope["path"].rstrip("/") or "/"
        if path.startswith("/v1/"):
            path = path[3:]
        routes: dict[tuple[str, str], Callable[[Scope, Receive, Send], Awaitable[None]]] = {
            ("POST", "/chat/completions"): self._chat,
            ("POST", "/embeddings"): self._embeddings,
            ("GET", "/models"): self._models,
            ("GET", "/_scripted/faults"): self._get_faults,
            ("POST", "/_scripted/faults"): self._set_faults,
            ("DELETE", "/_scripted/faults"): self._reset_faults,
            ("GET", "/_scripted/stats"): self._get_stats,
            ("DELETE", "/_scripted/stats"): self._reset_stats,
            ("GET", "/_scripted/requests"): self._get_requests,
        }
        handler = routes.get((method, path))
        if handler is None:
            if any(route_path == path for _, route_path in routes):
                raise _HttpError(405, f"method {method} not allowed on {scope['path']}")
            raise _HttpError(404, f"no route {method} {scope['path']}", code="not_found")
        await handler(scope, receive, send)

    # --- OpenAI endpoints ---------------------------------------------------------------------

    async def _chat(self, scope: Scope, receive: Receive, send: Send) -> None:
        body = await _json_body(receive)
        if body.get("stream"):
            raise _HttpError(400, "streaming is not supported by the scripted model")
        messages = body.get("messages")
        if not isinstance(messages, list) or not messages:
            raise _HttpError(400, "messages must be a non-empty list", code="invalid_value")
        response_format = body.get("response_format")
        format_type = response_format.get("type") if isinstance(response_format, dict) else None
        headers = _headers(scope)
        step = _step_of(headers, response_format)
        self.state.stats.calls[step] += 1
        self.state.requests.append(RecordedRequest("chat", step, _recordable(headers), body))

        decision = self.state.decide("chat", step)
        await self._apply_transport_faults(decision, receive)
        if decision.fault == "malformed_body":
            await _send_raw(send, 200, _MALFORMED_BODY)
            return

        content = steps.answer(step, _user_text(messages))
        if decision.fault == "schema_violation":
            content = steps.schema_violation(step)
        text = json.dumps(content, ensure_ascii=False)
        if decision.fault == "malformed_json":
            text = steps.malformed(content)
        if format_type not in _JSON_MODES:
            text = steps.as_prose(text)

        prompt_tokens = sum(count_tokens(_text_of(m)) for m in messages if isinstance(m, dict))
        completion_tokens = count_tokens(text)
        self.state.stats.prompt_tokens[step] += prompt_tokens
        self.state.stats.completion_tokens[step] += completion_tokens
        model = body.get("model")
        await _send_json(
            send,
            200,
            {
                "id": f"chatcmpl-scripted-{next(self._ids)}",
                "object": "chat.completion",
                "created": int(time.time()),
                "model": model if isinstance(model, str) else self.model_name,
                "choices": [
                    {
                        "index": 0,
                        "message": {"role": "assistant", "content": text, "refusal": None},
                        "logprobs": None,
                        "finish_reason": "stop",
                    }
                ],
                "usage": {
                    "prompt_tokens": prompt_tokens,
                    "completion_tokens": completion_tokens,
                    "total_tokens": prompt_tokens + completion_tokens,
                },
            },
        )

    async def _embeddings(self, scope: Scope, receive: Receive, send: Send) -> None:
        body = await _json_body(receive)
        texts = _embedding_inputs(body.get("input"))
        dimensions = body.get("dimensions", vectors.DEFAULT_DIMENSIONS)
        if dimensions is None:
            dimensions = vectors.DEFAULT_DIMENSIONS
        if not isinstance(dimensions, int) or isinstance(dimensions, bool) or dimensions < 1:
            raise _HttpError(400, "dimensions must be a positive integer", code="invalid_value")
        encoding_format = body.get("encoding_format") or "float"
        if encoding_format not in ("float", "base64"):
            raise _HttpError(400, "encoding_format must be float or base64", code="invalid_value")
        self.state.stats.embedding_calls += 1
        self.state.requests.append(
            RecordedRequest("embeddings", None, _recordable(_headers(scope)), body)
        )

        decision = self.state.decide("embeddings", None)
        await self._apply_transport_faults(decision, receive)
        if decision.fault in ("malformed_json", "malformed_body"):
            await _send_raw(send, 200, _MALFORMED_BODY)
            return

        size = dimensions - 1 if decision.fault == "schema_violation" else dimensions
        data = []
        for index, text in enumerate(texts):
            vector = vectors.embed_text(text, max(size, 1))[:size]
            embedding: list[float] | str = (
                vectors.to_base64(vector) if encoding_format == "base64" else vector
            )
            data.append({"object": "embedding", "index": index, "embedding": embedding})
        tokens = sum(count_tokens(text) for text in texts)
        self.state.stats.embedding_tokens += tokens
        model = body.get("model")
        await _send_json(
            send,
            200,
            {
                "object": "list",
                "data": data,
                "model": model if isinstance(model, str) else self.model_name,
                "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
            },
        )

    async def _models(self, scope: Scope, receive: Receive, send: Send) -> None:
        model = {"id": self.model_name, "object": "model", "created": 0, "owned_by": "memobase"}
        await _send_json(send, 200, {"object": "list", "data": [model]})

    async def _apply_transport_faults(self, decision: Decision, receive: Receive) -> None:
        await self._pause(decision.latency_s, receive)
        if decision.fault in ("http_500", "http_429"):
            headers = {}
            if decision.retry_after_ms is not None:
                headers["retry-after-ms"] = str(decision.retry_after_ms)
            if decision.fault == "http_429":
                raise _HttpError(
                    429,
                    "scripted fault: rate limit reached",
                    kind="requests",
                    code="rate_limit_exceeded",
                    headers=headers,
                )
            raise _HttpError(
                500, "scripted fault: internal error", kind="server_error", headers=headers
            )
        if decision.fault == "timeout":
            await self._pause(decision.hold_s, receive)

    async def _pause(self, seconds: float, receive: Receive) -> None:
        """Waits `seconds`; raises _ClientGone when the client leaves or the server closes."""
        if seconds <= 0:
            return
        watchers = {
            asyncio.ensure_future(_disconnected(receive)),
            asyncio.ensure_future(self._closing.wait()),
        }
        try:
            done, _ = await asyncio.wait(
                watchers, timeout=seconds, return_when=asyncio.FIRST_COMPLETED
            )
        finally:
            for watcher in watchers:
                watcher.cancel()
            for watcher in watchers:
                with contextlib.suppress(asyncio.CancelledError):
                    await watcher
        if self._closing.is_set():
            raise _HttpError(503, "the scripted model is shutting down", kind="server_error")
        if done:
            raise _ClientGone

    # --- control endpoints --------------------------------------------------------------------

    async def _get_faults(self, scope: Scope, receive: Receive, send: Send) -> None:
        await _send_json(send, 200, self._faults_json())

    async def _set_faults(self, scope: Scope, receive: Receive, send: Send) -> None:
        body = await _json_body(receive)
        try:
            config = FaultConfig.model_validate(body)
        except ValidationError as exc:
            problems = "; ".join(
                f"{'.'.join(str(p) for p in e['loc']) or 'body'}: {e['msg']}" for e in exc.errors()
            )
            raise _HttpError(400, f"invalid fault configuration: {problems}") from None
        self.state.set_faults(config)
        log.info("scripted faults set: %s", config.model_dump_json())
        await _send_json(send, 200, self._faults_json())

    async def _reset_faults(self, scope: Scope, receive: Receive, send: Send) -> None:
        await _drain(receive)
        self.state.reset_faults()
        await _send_json(send, 200, self._faults_json())

    def _faults_json(self) -> dict[str, object]:
        return {**self.state.faults.model_dump(), "remaining": self.state.remaining}

    async def _get_stats(self, scope: Scope, receive: Receive, send: Send) -> None:
        await _send_json(send, 200, self.state.stats.as_json())

    async def _get_requests(self, scope: Scope, receive: Receive, send: Send) -> None:
        await _send_json(send, 200, [request.as_json() for request in self.state.requests])

    async def _reset_stats(self, scope: Scope, receive: Receive, send: Send) -> None:
        await _drain(receive)
        self.state.reset_stats()
        await _send_json(send, 200, self.state.stats.as_json())


def build_scripted_llm_app(*, model_name: str = DEFAULT_MODEL) -> ScriptedLLM:
    return ScriptedLLM(model_name=model_name)


@dataclass
class ScriptedLLMServer:
    """A running scripted model; `base_url` is what `openai.AsyncOpenAI(base_url=...)` takes."""

    app: ScriptedLLM
    host: str
    port: int
    _http: HttpServer

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    @property
    def base_url(self) -> str:
        return f"{self.url}/v1"

    async def stop(self) -> None:
        self.app.close()
        await self._http.stop()


async def serve(
    host: str = "127.0.0.1", port: int = 0, *, app: ScriptedLLM | None = None
) -> ScriptedLLMServer:
    """Starts the scripted model on `host:port` (0 = a free port) in the running loop."""
    app = app or build_scripted_llm_app()
    http = HttpServer(app)
    bound = await http.start(host, port)
    return ScriptedLLMServer(app=app, host=host, port=bound, _http=http)


# --- request helpers ----------------------------------------------------------------------------


def _step_of(headers: dict[str, str], response_format: object) -> str:
    step = headers.get(STEP_HEADER, "").strip()
    if step:
        return step
    if isinstance(response_format, dict):
        schema = response_format.get("json_schema")
        if isinstance(schema, dict) and isinstance(schema.get("name"), str) and schema["name"]:
            return str(schema["name"])
    return "unknown"


def _text_of(message: dict[str, Any]) -> str:
    content = message.get("content")
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "\n".join(
            part["text"]
            for part in content
            if isinstance(part, dict) and isinstance(part.get("text"), str)
        )
    return ""


def _user_text(messages: list[Any]) -> str:
    for message in reversed(messages):
        if isinstance(message, dict) and message.get("role") == "user":
            return _text_of(message)
    return ""


def _embedding_inputs(raw: object) -> list[str]:
    if isinstance(raw, str):
        items: list[object] = [raw]
    elif isinstance(raw, list) and raw and all(isinstance(t, int) for t in raw):
        items = [raw]  # one text given as token ids
    elif isinstance(raw, list) and raw:
        items = list(raw)
    else:
        raise _HttpError(400, "input must be a string or a non-empty list", code="invalid_value")
    texts = []
    for item in items:
        if isinstance(item, str):
            text = item
        elif isinstance(item, list) and all(isinstance(t, int) for t in item):
            text = encoding().decode(item)
        else:
            raise _HttpError(400, "each input must be a string or token ids", code="invalid_value")
        if not text:
            raise _HttpError(400, "input cannot be an empty string", code="invalid_value")
        texts.append(text)
    return texts


def _headers(scope: Scope) -> dict[str, str]:
    return {
        name.decode("latin-1").lower(): value.decode("latin-1")
        for name, value in scope.get("headers", [])
    }


def _recordable(headers: dict[str, str]) -> dict[str, str]:
    return {name: value for name, value in headers.items() if name not in _SECRET_HEADERS}


async def _read_body(receive: Receive) -> bytes:
    chunks = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise _ClientGone
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > _MAX_BODY:
            raise _HttpError(413, "request body too large")
        chunks.append(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks)


async def _json_body(receive: Receive) -> dict[str, Any]:
    raw = await _read_body(receive)
    try:
        body = json.loads(raw or b"{}")
    except ValueError:
        raise _HttpError(400, "the request body is not valid JSON") from None
    if not isinstance(body, dict):
        raise _HttpError(400, "the request body must be a JSON object")
    return body


async def _drain(receive: Receive) -> None:
    await _read_body(receive)


async def _disconnected(receive: Receive) -> None:
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return


async def _send_json(
    send: Send, status: int, body: object, headers: dict[str, str] | None = None
) -> None:
    await _send_raw(send, status, json.dumps(body, ensure_ascii=False).encode(), headers)


async def _send_raw(
    send: Send, status: int, payload: bytes, headers: dict[str, str] | None = None
) -> None:
    raw_headers = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(payload)).encode()),
    ]
    raw_headers += [(k.encode("latin-1"), v.encode("latin-1")) for k, v in (headers or {}).items()]
    await send({"type": "http.response.start", "status": status, "headers": raw_headers})
    await send({"type": "http.response.body", "body": payload})


async def _lifespan(receive: Receive, send: Send) -> None:
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await send({"type": "lifespan.shutdown.complete"})
            return
