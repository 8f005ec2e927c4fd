"""The ASGI application: HTTP/JSON request → gRPC call → Memobase envelope."""

from __future__ import annotations

import json
import logging
import re
import time
import uuid
from collections.abc import Awaitable, Callable, Mapping, MutableMapping
from typing import Any
from urllib.parse import quote

from google.protobuf.message import Message

from memobase_server.observability.hooks import NO_OBSERVER, GatewayObserver

from . import codec, errors
from .errors import DecodeError, HttpError
from .fields import leaf_parent, parse_scalar
from .invokers import Invoker, RpcFailure
from .query import apply_query, parse_query
from .routes import MethodNotAllowedError, RouteMatch, RouteNotFoundError, Router

Scope = MutableMapping[str, Any]
ASGIMessage = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[ASGIMessage]]
Send = Callable[[ASGIMessage], Awaitable[None]]
ExtraRoute = Callable[[], Awaitable[tuple[int, bytes, str]]]

DEFAULT_DEADLINE_S = 60.0
DEFAULT_MAX_BODY_BYTES = 8 * 2**20
JSON_CONTENT_TYPE = "application/json"
# The route a request matched (its path template, or an extra route's path), kept in the ASGI
# scope for the observer; requests that match none are reported as UNMATCHED_ROUTE.
ROUTE_SCOPE_KEY = "memobase.route"
UNMATCHED_ROUTE = "unmatched"

_log = logging.getLogger(__name__)
# gRPC metadata values must be printable ASCII.
_METADATA_VALUE = re.compile(r"[\x20-\x7e]*")
_REQUEST_ID = re.compile(r"[\x21-\x7e]{1,128}")


class _BodyTooLargeError(Exception):
    pass


class _ClientGoneError(Exception):
    pass


def encode_json(value: object) -> bytes:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


def envelope(
    data: object,
    errno: int = 0,
    errmsg: str = "",
    detail: tuple[dict[str, object], ...] | None = None,
) -> bytes:
    body: dict[str, object] = {"data": data, "errno": errno, "errmsg": errmsg}
    if detail is not None:
        body["detail"] = list(detail)
    return encode_json(body)


class GatewayApp:
    """Transcodes REST calls to the gRPC methods of `router`'s routes over `channel`."""

    def __init__(
        self,
        router: Router,
        invoker: Invoker,
        *,
        deadline_s: float = DEFAULT_DEADLINE_S,
        max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
        extra_routes: Mapping[str, ExtraRoute] | None = None,
        observer: GatewayObserver = NO_OBSERVER,
    ) -> None:
        if deadline_s <= 0:
            raise ValueError("deadline_s must be positive")
        if max_body_bytes < 0:
            raise ValueError("max_body_bytes must not be negative")
        self._router = router
        self._invoke = invoker
        self._deadline_s = deadline_s
        self._max_body_bytes = max_body_bytes
        self._extra_routes = dict(extra_routes or {})
        self._observer = observer

    @property
    def router(self) -> Router:
        return self._router

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            await self._http(scope, receive, send)
        elif scope["type"] == "lifespan":
            await self._lifespan(receive, send)

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await send({"type": "lifespan.shutdown.complete"})
                return

    async def _http(self, scope: Scope, receive: Receive, send: Send) -> None:
        started = time.perf_counter()
        headers = _headers(scope)
        request_id = headers.get("x-request-id", "")
        if not _REQUEST_ID.fullmatch(request_id):
            request_id = uuid.uuid4().hex
        method = str(scope["method"]).upper()
        raw_path = _raw_path(scope)
        try:
            status, body, content_type, extra = await self._handle(
                scope,
                receive,
                method=method,
                raw_path=raw_path,
                headers=headers,
                request_id=request_id,
            )
        except _ClientGoneError:
            return
        elapsed = time.perf_counter() - started
        response_headers = [
            (b"content-type", content_type.encode("latin-1")),
            (b"content-length", str(len(body)).encode("ascii")),
            (b"x-request-id", request_id.encode("ascii")),
            (b"x-process-time", repr(elapsed).encode("ascii")),
            *extra,
        ]
        await send({"type": "http.response.start", "status": status, "headers": response_headers})
        await send({"type": "http.response.body", "body": body})
        self._observer.gateway_request_done(
            str(scope.get(ROUTE_SCOPE_KEY, UNMATCHED_ROUTE)), status, elapsed
        )

    async def _handle(
        self,
        scope: Scope,
        receive: Receive,
        *,
        method: str,
        raw_path: str,
        headers: dict[str, str],
        request_id: str,
    ) -> tuple[int, bytes, str, list[tuple[bytes, bytes]]]:
        path = str(scope.get("path", raw_path))
        extra_route = self._extra_routes.get(path)
        if extra_route is not None:
            scope[ROUTE_SCOPE_KEY] = path
            if method != "GET":
                return _error(errors.method_not_allowed(method, raw_path), [(b"allow", b"GET")])
            status, body, content_type = await extra_route()
            return status, body, content_type, []
        try:
            match = self._router.match(method, raw_path)
        except RouteNotFoundError:
            return _error(errors.not_found(method, raw_path))
        except MethodNotAllowedError as error:
            allow = ", ".join(error.allowed).encode("ascii")
            return _error(errors.method_not_allowed(method, raw_path), [(b"allow", allow)])
        route = match.route
        scope[ROUTE_SCOPE_KEY] = route.template.source
        try:
            raw_body = await self._read_body(receive, headers) if route.body else b""
        except _BodyTooLargeError:
            return _error(errors.payload_too_large(self._max_body_bytes))
        try:
            request = build_request(match, raw_body, scope.get("query_string", b""))
        except DecodeError as error:
            return _error(errors.decode_error(error))
        metadata = _metadata(headers, request_id)
        try:
            response = await self._invoke(
                route, request, deadline_s=self._deadline_s, metadata=metadata
            )
            data = codec.render_response(route, response)
        except RpcFailure as error:
            failure = errors.from_rpc_status(
                error.code, error.details, error.trailing_metadata, request_id, raw_path
            )
            if failure.errno == 500:
                _log.error(
                    "request %s: %s failed: %s %s",
                    request_id,
                    route.grpc_method,
                    error.code.name,
                    error.details,
                )
            return _error(failure)
        except Exception:
            _log.exception("request %s: %s failed", request_id, route.grpc_method)
            return _error(errors.internal_error(request_id))
        return 200, envelope(data), JSON_CONTENT_TYPE, []

    async def _read_body(self, receive: Receive, headers: dict[str, str]) -> bytes:
        declared = headers.get("content-length", "")
        if declared.isdigit() and int(declared) > self._max_body_bytes:
            raise _BodyTooLargeError
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                raise _ClientGoneError
            chunk: bytes = message.get("body", b"")
            size += len(chunk)
            if size > self._max_body_bytes:
                raise _BodyTooLargeError
            chunks.append(chunk)
            if not message.get("more_body", False):
                return b"".join(chunks)


def build_request(match: RouteMatch, raw_body: bytes, query_string: bytes | str) -> Message:
    """The request message: body first, then query parameters, then path parameters."""
    route = match.route
    request = route.request_class()
    codec.decode_body(route, codec.parse_json(raw_body) if route.body else None, request)
    apply_query(request, parse_query(query_string), skip=route.path_fields.keys())
    for name, value in match.path_params.items():
        chain = route.path_fields[name]
        field = chain[-1]
        setattr(leaf_parent(request, chain), field.name, parse_scalar(field, value, name))
    return request


def _headers(scope: Scope) -> dict[str, str]:
    headers: dict[str, str] = {}
    for name, value in scope.get("headers", []):
        headers[name.decode("latin-1").lower()] = value.decode("latin-1")
    return headers


def _raw_path(scope: Scope) -> str:
    raw = scope.get("raw_path")
    if isinstance(raw, bytes) and raw:
        return raw.decode("latin-1").partition("?")[0]
    return quote(str(scope.get("path", "/")))


def _metadata(headers: dict[str, str], request_id: str) -> tuple[tuple[str, str], ...]:
    metadata = [("x-request-id", request_id)]
    authorization = headers.get("authorization")
    if authorization is not None and _METADATA_VALUE.fullmatch(authorization):
        metadata.append(("authorization", authorization))
    return tuple(metadata)


def _error(
    failure: HttpError, extra: list[tuple[bytes, bytes]] | None = None
) -> tuple[int, bytes, str, list[tuple[bytes, bytes]]]:
    return (
        failure.status,
        envelope(None, failure.errno, failure.errmsg, failure.detail),
        JSON_CONTENT_TYPE,
        extra or [],
    )
