"""The OpenAPI 3.1 document of the REST gateway, built from the routes the gateway serves.

One source of truth: the document is generated at start-up from the same `Router` (compiled
from the protos' `google.api.http` annotations) that transcodes the requests, and it writes
down, as JSON Schema, what `codec.py` does:

- field names are the proto names (`user_id`); requests also accept the lowerCamel JSON names,
  which the document leaves out;
- enums are their lowercase short names (`BLOB_TYPE_CHAT` is `"chat"`); requests also accept
  the full names and the numbers;
- every integer, 64-bit ones included, is a JSON number (`type: integer`, with its range);
- `google.protobuf.Struct` is a free-form object, `Value` any JSON value, `ListValue` an array;
  `Timestamp` is an RFC 3339 `date-time` string, `Duration` a string such as `"1.5s"`,
  `FieldMask` a comma-separated string, wrappers the value they wrap;
- answers carry every field of the message: a repeated field is an array (never null), a map
  an object; a message field, an `optional` scalar or a oneof member is `null` when unset;
- every answer is the envelope `{"data": …, "errno": 0, "errmsg": ""}`. `data` is the response
  message; the `response_body` field (an array when it is repeated) when the rule names one;
  `null` for a message without fields. Application errors (errno 400, 404, 409, 500, 503, 504)
  come with HTTP 200 and `data: null`; 401, 403, 413, 422 (with a `detail` list) and 501 come
  with the same HTTP status;
- path variables are required strings (or the field's type); query parameters are the leaf
  fields that neither the path nor the body binds (a repeated one is an array sent as repeated
  keys, `?only_topics=a&only_topics=b`); with `body: "*"` the body holds every field but the
  path variables, with `body: "field"` it is that field's JSON.
"""

from __future__ import annotations

import importlib.metadata
import json
import re
from collections.abc import Collection, Iterator
from typing import Any

from google.protobuf.descriptor import Descriptor, EnumDescriptor, FieldDescriptor
from google.protobuf.message import Message

from .app import ExtraRoute
from .docs_page import render_docs_page
from .fields import FD, INT_RANGES, enum_short_name, is_map
from .routes import Route, Router, SegmentKind

__all__ = [
    "DOCS_PATH",
    "OPENAPI_PATH",
    "OPENAPI_VERSION",
    "ApiDocs",
    "build_openapi",
    "openapi_path",
]

JsonSchema = dict[str, Any]

OPENAPI_VERSION = "3.1.0"
OPENAPI_PATH = "/openapi.json"
DOCS_PATH = "/docs"
BEARER_SCHEME = "bearerAuth"
DEFAULT_TITLE = "Memobase REST API"

_SCHEMAS = "#/components/schemas/"
_ENVELOPE_ERROR = "ErrorEnvelope"
_ENVELOPE_VALIDATION = "ValidationErrorEnvelope"
_REQUEST_ID_HEADER = "RequestId"
_MAX_QUERY_DEPTH = 8

_TIMESTAMP = "google.protobuf.Timestamp"
_DURATION = "google.protobuf.Duration"
_FIELD_MASK = "google.protobuf.FieldMask"
_STRUCT = "google.protobuf.Struct"
_LIST_VALUE = "google.protobuf.ListValue"
_EMPTY = "google.protobuf.Empty"
_WKT_PREFIX = "google.protobuf."
# Well-known types a query parameter can set (fields.set_from_texts parses their JSON text).
_QUERY_WKTS = frozenset({_TIMESTAMP, _DURATION, _FIELD_MASK})
_WRAPPERS = frozenset(
    f"google.protobuf.{name}Value"
    for name in ("Double", "Float", "Int64", "UInt64", "Int32", "UInt32", "Bool", "String", "Bytes")
)
_INT_FORMATS = {
    FD.TYPE_INT32: "int32",
    FD.TYPE_SINT32: "int32",
    FD.TYPE_SFIXED32: "int32",
    FD.TYPE_UINT32: "uint32",
    FD.TYPE_FIXED32: "uint32",
    FD.TYPE_INT64: "int64",
    FD.TYPE_SINT64: "int64",
    FD.TYPE_SFIXED64: "int64",
    FD.TYPE_UINT64: "uint64",
    FD.TYPE_FIXED64: "uint64",
}
_ERRORS = {
    401: "Missing or wrong Bearer token (errno 401).",
    403: "The token may not call this route, e.g. a project key on a root-only route.",
    413: "The request body is larger than the server's `max_request_bytes`.",
    422: "Malformed JSON, a value of the wrong type, or an id that is not a UUID v4/v5.",
    501: "The route is not implemented yet.",
}
_SUCCESS = (
    "The Memobase envelope. `errno` 0 is success and `data` holds the answer; any other "
    "`errno` (400 invalid value, 404 unknown user or item, 409 id taken, 500 internal error, "
    "503 dependency down, 504 deadline) is an application error with `data: null`."
)
_CAMEL = re.compile(r"(?<=[a-z0-9])(?=[A-Z])")


def openapi_path(route: Route) -> str:
    """The route's path in OpenAPI form: `{field}` for each variable, `:verb` kept literally.
    Wildcards outside variables (`/v1/*/x`) become `{_wildcardN}` parameters."""
    template = route.template
    names: dict[int, str] = {}
    covered: set[int] = set()
    for variable in template.variables:
        names[variable.start] = variable.field_path
        covered.update(range(variable.start + 1, variable.end))
    parts: list[str] = []
    wildcard = 0
    for index, segment in enumerate(template.segments):
        if index in covered:
            continue
        if index in names:
            parts.append("{" + names[index] + "}")
        elif segment.kind is SegmentKind.LITERAL:
            parts.append(segment.literal)
        else:
            wildcard += 1
            parts.append("{_wildcard" + str(wildcard) + "}")
    path = "/" + "/".join(parts)
    return f"{path}:{template.verb}" if template.verb is not None else path


def _nullable(schema: JsonSchema) -> JsonSchema:
    if not schema:  # any JSON value already includes null
        return schema
    kind = schema.get("type")
    if isinstance(kind, str) and "enum" not in schema and "const" not in schema:
        return {**schema, "type": [kind, "null"]}
    return {"anyOf": [schema, {"type": "null"}]}


def _ref(name: str) -> JsonSchema:
    return {"$ref": _SCHEMAS + name}


def _descriptor(message_class: type[Message]) -> Descriptor:
    descriptor = message_class.DESCRIPTOR
    assert isinstance(descriptor, Descriptor)
    return descriptor


def _split_words(name: str) -> str:
    return _CAMEL.sub(" ", name)


class _SchemaBuilder:
    """Component schemas for messages and enums, each built once. Answers (`output`) list every
    field as required; requests (`…Input`) require none, as proto3 does."""

    def __init__(self) -> None:
        self.schemas: dict[str, JsonSchema] = {}
        self._names: dict[tuple[str, bool], str] = {}
        self._taken: dict[str, str] = {}

    def _name(self, full_name: str, short: str, suffix: str, output: bool) -> str:
        key = (full_name, output)
        name = self._names.get(key)
        if name is None:
            name = short + suffix
            owner = self._taken.get(name)
            if owner is not None and owner != full_name:
                name = full_name + suffix
            self._taken[name] = full_name
            self._names[key] = name
        return name

    def enum(self, enum: EnumDescriptor) -> JsonSchema:
        name = self._name(enum.full_name, enum.name, "", output=True)
        if name not in self.schemas:
            self.schemas[name] = {
                "type": "string",
                "enum": [enum_short_name(enum, value.number) for value in enum.values],
                "description": f"`{enum.full_name}`, as lowercase short names.",
            }
        return _ref(name)

    def message(self, message: Descriptor, *, output: bool) -> JsonSchema:
        suffix = "" if output or message.name.endswith("Input") else "Input"
        name = self._name(message.full_name, message.name, suffix, output)
        if name not in self.schemas:
            self.schemas[name] = {}  # reserved first: a message may contain itself
            self.schemas[name] = self.object_schema(message, output=output)
        return _ref(name)

    def object_schema(
        self, message: Descriptor, *, output: bool, exclude: Collection[str] = ()
    ) -> JsonSchema:
        properties = {
            field.name: self.field(field, output=output)
            for field in message.fields
            if field.name not in exclude
        }
        schema: JsonSchema = {
            "type": "object",
            "properties": properties,
            "description": f"`{message.full_name}`",
        }
        if output and properties:
            schema["required"] = list(properties)
        return schema

    def field(self, field: FieldDescriptor, *, output: bool) -> JsonSchema:
        """A field's JSON: arrays for repeated, objects for maps, null when unset and present."""
        if is_map(field):
            entry = field.message_type
            assert entry is not None
            return {
                "type": "object",
                "additionalProperties": self.value(entry.fields_by_name["value"], output=output),
            }
        value = self.value(field, output=output)
        if field.is_repeated:
            return {"type": "array", "items": value}
        return _nullable(value) if field.has_presence else value

    def value(self, field: FieldDescriptor, *, output: bool) -> JsonSchema:
        """One value of a field (an item, for a repeated field)."""
        message = field.message_type
        if message is None:
            return self.scalar(field)
        if message.full_name.startswith(_WKT_PREFIX):
            return self.well_known(message)
        return self.message(message, output=output)

    def scalar(self, field: FieldDescriptor) -> JsonSchema:
        kind = field.type
        if kind == FD.TYPE_ENUM:
            enum = field.enum_type
            assert enum is not None
            return self.enum(enum)
        if kind == FD.TYPE_BOOL:
            return {"type": "boolean"}
        if kind in INT_RANGES:
            low, high = INT_RANGES[kind]
            return {
                "type": "integer",
                "format": _INT_FORMATS[kind],
                "minimum": low,
                "maximum": high,
            }
        if kind == FD.TYPE_DOUBLE:
            return {"type": "number", "format": "double"}
        if kind == FD.TYPE_FLOAT:
            return {"type": "number", "format": "float"}
        if kind == FD.TYPE_BYTES:
            return {"type": "string", "contentEncoding": "base64"}
        return {"type": "string"}

    def well_known(self, message: Descriptor) -> JsonSchema:
        name = message.full_name
        if name == _STRUCT:
            return {"type": "object", "additionalProperties": True}
        if name == _LIST_VALUE:
            return {"type": "array", "items": {}}
        if name == _TIMESTAMP:
            return {"type": "string", "format": "date-time"}
        if name == _DURATION:
            return {"type": "string", "pattern": r"^-?[0-9]+(\.[0-9]{1,9})?s$"}
        if name == _FIELD_MASK:
            return {"type": "string", "description": "Comma-separated field paths."}
        if name in _WRAPPERS:
            return self.scalar(message.fields_by_name["value"])
        if name == _EMPTY:
            return {"type": "object"}
        return {}  # Value (any JSON), Any, and types the gateway renders generically


def _query_fields(
    message: Descriptor, prefix: str, skip: Collection[str], seen: frozenset[str]
) -> Iterator[tuple[str, FieldDescriptor]]:
    """(dotted name, field) for every field a query parameter can set (fields.set_from_texts)."""
    if len(seen) > _MAX_QUERY_DEPTH:
        return
    for field in message.fields:
        name = prefix + field.name
        if name in skip or is_map(field):
            continue
        target = field.message_type
        if target is None:
            yield name, field
        elif field.is_repeated:
            continue
        elif target.full_name.startswith(_WKT_PREFIX):
            if target.full_name in _QUERY_WKTS or target.full_name in _WRAPPERS:
                yield name, field
        elif target.full_name not in seen:
            yield from _query_fields(target, name + ".", skip, seen | {target.full_name})


def _update_mask_filled_from_body(route: Route) -> str | None:
    """The FieldMask the gateway fills from the body's keys (codec.decode_body), if any."""
    if route.body is None or route.body == "*":
        return None
    request = _descriptor(route.request_class)
    body = request.fields_by_name[route.body].message_type
    mask = request.fields_by_name.get("update_mask")
    if body is None or body.full_name.startswith(_WKT_PREFIX) or mask is None:
        return None
    if mask.is_repeated or mask.message_type is None:
        return None
    return mask.name if mask.message_type.full_name == _FIELD_MASK else None


class _DocumentBuilder:
    def __init__(self, public_methods: Collection[str]) -> None:
        self._public = frozenset(public_methods)
        self._schemas = _SchemaBuilder()
        self._operation_ids: set[str] = set()

    def build(
        self, routes: Collection[Route], *, title: str, version: str, server_url: str | None
    ) -> dict[str, Any]:
        paths: dict[str, dict[str, Any]] = {}
        tags: dict[str, None] = {}
        for route in routes:
            service = route.grpc_method.strip("/").partition("/")[0].rpartition(".")[2]
            tags.setdefault(service, None)
            item = paths.setdefault(openapi_path(route), {})
            item[route.http_method.lower()] = self._operation(route, service)
        document: dict[str, Any] = {
            "openapi": OPENAPI_VERSION,
            "info": {"title": title, "version": version, "description": _info_description()},
        }
        if server_url is not None:
            document["servers"] = [{"url": server_url}]
        document["tags"] = [{"name": name} for name in tags]
        document["security"] = [{BEARER_SCHEME: []}]
        document["paths"] = paths
        self._schemas.schemas.update(_envelope_schemas())
        document["components"] = {
            "schemas": dict(sorted(self._schemas.schemas.items())),
            "securitySchemes": {
                BEARER_SCHEME: {
                    "type": "http",
                    "scheme": "bearer",
                    "description": (
                        "`Authorization: Bearer <token>`: the root token (ACCESS_TOKEN) or a "
                        "project key `sk-<project_id>-<secret>`."
                    ),
                }
            },
            "headers": {
                _REQUEST_ID_HEADER: {
                    "description": "The request id (the caller's `X-Request-Id`, or a new one).",
                    "required": True,
                    "schema": {"type": "string"},
                }
            },
        }
        return document

    def _operation_id(self, service: str, method: str) -> str:
        base = f"{service}.{method}"
        candidate, n = base, 1
        while candidate in self._operation_ids:
            n += 1
            candidate = f"{base}.{n}"
        self._operation_ids.add(candidate)
        return candidate

    def _operation(self, route: Route, service: str) -> dict[str, Any]:
        method = route.grpc_method.rpartition("/")[2]
        public = route.grpc_method in self._public
        operation: dict[str, Any] = {
            "tags": [service],
            "operationId": self._operation_id(service, method),
            "summary": _split_words(method),
            "description": f"Transcoded to the gRPC method `{route.grpc_method.lstrip('/')}`.",
            "x-grpc-method": route.grpc_method,
        }
        parameters = self._parameters(route)
        if parameters:
            operation["parameters"] = parameters
        body = self._request_body(route)
        if body is not None:
            operation["requestBody"] = body
        operation["responses"] = self._responses(route, public=public)
        if public:
            operation["security"] = []
        return operation

    def _parameters(self, route: Route) -> list[dict[str, Any]]:
        schemas = self._schemas
        parameters: list[dict[str, Any]] = []
        for name, chain in route.path_fields.items():
            schema = schemas.value(chain[-1], output=False)
            if schema.get("type") == "string":
                schema = {**schema, "minLength": 1}
            parameters.append({"name": name, "in": "path", "required": True, "schema": schema})
        path = openapi_path(route)
        wildcard = 0
        while "{_wildcard" + str(wildcard + 1) + "}" in path:
            wildcard += 1
            parameters.append(
                {
                    "name": f"_wildcard{wildcard}",
                    "in": "path",
                    "required": True,
                    "schema": {"type": "string", "minLength": 1},
                }
            )
        if route.body == "*":
            return parameters
        skip = set(route.path_fields)
        if route.body is not None:
            skip.add(route.body)
        mask = _update_mask_filled_from_body(route)
        if mask is not None:
            skip.add(mask)
        request = _descriptor(route.request_class)
        for name, field in _query_fields(request, "", skip, frozenset({request.full_name})):
            value = schemas.value(field, output=False)
            parameter: dict[str, Any] = {"name": name, "in": "query", "required": False}
            if field.is_repeated:
                parameter["schema"] = {"type": "array", "items": value}
                parameter["style"] = "form"
                parameter["explode"] = True
            else:
                parameter["schema"] = value
            parameters.append(parameter)
        return parameters

    def _request_body(self, route: Route) -> dict[str, Any] | None:
        if route.body is None:
            return None
        request = _descriptor(route.request_class)
        if route.body == "*":
            top_level_path = {name for name in route.path_fields if "." not in name}
            schema = self._schemas.object_schema(request, output=False, exclude=top_level_path)
        else:
            schema = self._schemas.field(request.fields_by_name[route.body], output=False)
        return {"required": False, "content": {"application/json": {"schema": schema}}}

    def _data_schema(self, route: Route) -> JsonSchema:
        response = _descriptor(route.response_class)
        if route.response_body is not None:
            return self._schemas.field(response.fields_by_name[route.response_body], output=True)
        if not response.fields:
            return {"type": "null"}
        return self._schemas.message(response, output=True)

    def _responses(self, route: Route, *, public: bool) -> dict[str, Any]:
        headers = {"X-Request-Id": {"$ref": "#/components/headers/" + _REQUEST_ID_HEADER}}
        success: JsonSchema = {
            "type": "object",
            "required": ["data", "errno", "errmsg"],
            "properties": {
                "data": self._data_schema(route),
                "errno": {"const": 0},
                "errmsg": {"type": "string"},
            },
        }
        responses: dict[str, Any] = {
            "200": {
                "description": _SUCCESS,
                "headers": headers,
                "content": {
                    "application/json": {
                        "schema": {"anyOf": [success, _ref(_ENVELOPE_ERROR)]},
                    }
                },
            }
        }
        statuses = [422, 501] if public else [401, 403, 422, 501]
        if route.body is not None:
            statuses.append(413)
        for status in sorted(statuses):
            envelope = _ENVELOPE_VALIDATION if status == 422 else _ENVELOPE_ERROR
            responses[str(status)] = {
                "description": _ERRORS[status],
                "headers": headers,
                "content": {"application/json": {"schema": _ref(envelope)}},
            }
        return responses


def _envelope_schemas() -> dict[str, JsonSchema]:
    error: JsonSchema = {
        "type": "object",
        "description": "An error answer: `data` is null and `errno` names the error.",
        "required": ["data", "errno", "errmsg"],
        "properties": {
            "data": {"type": "null"},
            "errno": {"type": "integer", "not": {"const": 0}},
            "errmsg": {"type": "string"},
        },
    }
    validation: JsonSchema = {
        "type": "object",
        "description": "A request that could not be decoded (HTTP 422, errno 422).",
        "required": ["data", "errno", "errmsg", "detail"],
        "properties": {
            **error["properties"],
            "errno": {"const": 422},
            "detail": {
                "type": "array",
                "items": {
                    "type": "object",
                    "required": ["loc", "msg", "type"],
                    "properties": {
                        "loc": {
                            "type": "array",
                            "items": {"anyOf": [{"type": "string"}, {"type": "integer"}]},
                        },
                        "msg": {"type": "string"},
                        "type": {"type": "string"},
                    },
                },
            },
        },
    }
    return {_ENVELOPE_ERROR: error, _ENVELOPE_VALIDATION: validation}


def _info_description() -> str:
    doc = __doc__ or ""
    start = doc.find("- field names")
    rules = doc[start:].strip() if start >= 0 else ""
    return (
        "Memobase's HTTP API, served by a generic transcoder from the gRPC contract "
        "(`proto/memobase/v1`). Every route but the healthcheck needs "
        "`Authorization: Bearer <token>`.\n\nHow protobuf maps to JSON here:\n\n" + rules
    )


def _package_version() -> str:
    try:
        return importlib.metadata.version("memobase-server")
    except importlib.metadata.PackageNotFoundError:
        return "0"


def build_openapi(
    router: Router,
    *,
    public_methods: Collection[str] = (),
    title: str = DEFAULT_TITLE,
    version: str | None = None,
    server_url: str | None = None,
) -> dict[str, Any]:
    """The OpenAPI 3.1 document of `router`'s routes. `public_methods` (gRPC method paths such
    as `/memobase.v1.ProjectService/Healthcheck`) are documented without the Bearer scheme."""
    builder = _DocumentBuilder(public_methods)
    return builder.build(
        router.routes, title=title, version=version or _package_version(), server_url=server_url
    )


class ApiDocs:
    """`/openapi.json` and `/docs` for the gateway's `extra_routes`. The routes exist before
    the gateway does; `publish(gateway.router)` renders the document and the page once, at
    start-up, from the very router that serves the requests:

        docs = ApiDocs(public_methods=PUBLIC_METHODS)
        gateway = build_gateway(channel, extra_routes=docs.routes())
        docs.publish(gateway.router)
    """

    def __init__(
        self,
        *,
        public_methods: Collection[str] = (),
        title: str = DEFAULT_TITLE,
        openapi_path: str = OPENAPI_PATH,
        docs_path: str = DOCS_PATH,
    ) -> None:
        self._public = tuple(public_methods)
        self._title = title
        self._openapi_path = openapi_path
        self._docs_path = docs_path
        self._document: dict[str, Any] | None = None
        self._json = b""
        self._html = b""

    @property
    def document(self) -> dict[str, Any]:
        if self._document is None:
            raise RuntimeError("ApiDocs.publish was not called")
        return self._document

    def publish(self, router: Router) -> dict[str, Any]:
        document = build_openapi(router, public_methods=self._public, title=self._title)
        self._json = json.dumps(document, ensure_ascii=False, separators=(",", ":")).encode()
        self._html = render_docs_page(document, openapi_url=self._openapi_path).encode()
        self._document = document
        return document

    async def _serve_json(self) -> tuple[int, bytes, str]:
        if self._document is None:
            return _NOT_READY
        return 200, self._json, "application/json"

    async def _serve_html(self) -> tuple[int, bytes, str]:
        if self._document is None:
            return _NOT_READY
        return 200, self._html, "text/html; charset=utf-8"

    def routes(self) -> dict[str, ExtraRoute]:
        return {self._openapi_path: self._serve_json, self._docs_path: self._serve_html}


_NOT_READY = (
    503,
    b'{"data":null,"errno":503,"errmsg":"API documentation not published yet"}',
    "application/json",
)
