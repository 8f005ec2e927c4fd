"""JSON ↔ protobuf for the REST gateway.

Parsing maps REST enum short names (`"chat"`) to full names before `json_format.ParseDict`
and checks JSON types so errors name the field. Rendering keeps proto field names, renders every
field (unset messages and optional scalars as null), int64 as numbers and enums as short names.
"""

from __future__ import annotations

import base64
import json
import math
from typing import Any

from google.protobuf import duration_pb2, json_format, struct_pb2, timestamp_pb2
from google.protobuf.descriptor import Descriptor, FieldDescriptor
from google.protobuf.message import Message

from .errors import DecodeError
from .fields import (
    FD,
    FLOAT_TYPES,
    INT_RANGES,
    check_int_range,
    descriptor_of,
    enum_full_name,
    enum_short_name,
    find_field,
    is_map,
    parse_float,
    parse_int,
)
from .routes import Route

JsonValue = Any

_STRUCT = "google.protobuf.Struct"
_VALUE = "google.protobuf.Value"
_LIST_VALUE = "google.protobuf.ListValue"
_FIELD_MASK = "google.protobuf.FieldMask"
_TIMESTAMP = "google.protobuf.Timestamp"
_DURATION = "google.protobuf.Duration"
_STRING_WKTS = frozenset({_TIMESTAMP, _DURATION, _FIELD_MASK})
_WRAPPERS = frozenset(
    f"google.protobuf.{name}Value"
    for name in ("Double", "Float", "Int64", "UInt64", "Int32", "UInt32", "Bool", "String", "Bytes")
)
_MAX_SAFE_INTEGER = 2**53
_MAX_DEPTH = 64


def _join(where: str, name: str) -> str:
    return f"{where}.{name}" if where else name


def _json_kind(value: JsonValue) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array"
    return "an object"


def _expected(where: str, what: str, value: JsonValue) -> DecodeError:
    return DecodeError(where, f"expected {what}, got {_json_kind(value)}")


def _prepare_scalar(field: FieldDescriptor, value: JsonValue, where: str) -> JsonValue:
    if field.type == FD.TYPE_ENUM:
        enum = field.enum_type
        assert enum is not None
        if isinstance(value, str):
            return enum_full_name(enum, value, where)
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        raise _expected(where, "an enum name", value)
    if field.type in (FD.TYPE_STRING, FD.TYPE_BYTES):
        if not isinstance(value, str):
            raise _expected(where, "a string", value)
        return value
    if field.type == FD.TYPE_BOOL:
        if not isinstance(value, bool):
            raise _expected(where, "a boolean", value)
        return value
    if field.type in INT_RANGES:
        if isinstance(value, str):
            return parse_int(field, value, where)
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise _expected(where, "an integer", value)
        if isinstance(value, float) and not value.is_integer():
            raise DecodeError(where, f"expected an integer, got {value!r}")
        return check_int_range(field, int(value), where)
    if field.type in FLOAT_TYPES:
        if isinstance(value, str):
            return _render_float(parse_float(value, where))
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise _expected(where, "a number", value)
        return value
    raise DecodeError(where, "unsupported field type")


def _check_wkt_string(name: str, value: str, where: str) -> None:
    checked: Message
    if name == _TIMESTAMP:
        checked, example = timestamp_pb2.Timestamp(), "2025-06-01T08:00:00Z"
    elif name == _DURATION:
        checked, example = duration_pb2.Duration(), "1.5s"
    else:
        return
    try:
        json_format.Parse(json.dumps(value), checked)
    except json_format.ParseError:
        raise DecodeError(
            where, f"invalid {checked.DESCRIPTOR.name} {value!r}, e.g. {example!r}"
        ) from None


def _prepare_wkt(message: Descriptor, value: JsonValue, where: str) -> JsonValue:
    name = message.full_name
    if name == _STRUCT and not isinstance(value, dict):
        raise _expected(where, "an object", value)
    if name == _LIST_VALUE and not isinstance(value, list):
        raise _expected(where, "an array", value)
    if name in _STRING_WKTS:
        if not isinstance(value, str):
            raise _expected(where, "a string", value)
        _check_wkt_string(name, value, where)
    if name in _WRAPPERS:
        return _prepare_scalar(message.fields_by_name["value"], value, where)
    return value


def _prepare_value(field: FieldDescriptor, value: JsonValue, where: str, depth: int) -> JsonValue:
    message = field.message_type
    if message is None:
        return _prepare_scalar(field, value, where)
    if message.full_name.startswith("google.protobuf."):
        return _prepare_wkt(message, value, where)
    return prepare_message(message, value, where, depth + 1)


def _prepare_field(field: FieldDescriptor, value: JsonValue, where: str, depth: int) -> JsonValue:
    if is_map(field):
        if not isinstance(value, dict):
            raise _expected(where, "an object", value)
        entry = field.message_type
        assert entry is not None
        value_field = entry.fields_by_name["value"]
        return {
            key: _prepare_value(value_field, item, f"{where}[{key!r}]", depth)
            for key, item in value.items()
            if item is not None
        }
    if field.is_repeated:
        if not isinstance(value, list):
            raise _expected(where, "an array", value)
        return [
            _prepare_value(field, item, f"{where}[{index}]", depth)
            for index, item in enumerate(value)
        ]
    return _prepare_value(field, value, where, depth)


def prepare_message(
    message: Descriptor, value: JsonValue, where: str = "", depth: int = 0
) -> dict[str, JsonValue]:
    """A JSON object checked against `message`, with enum short names replaced by full names.

    Unknown keys and null values (unset) are dropped.
    """
    if depth > _MAX_DEPTH:
        raise DecodeError(where, "nested too deeply")
    if not isinstance(value, dict):
        raise _expected(where or "body", "an object", value)
    prepared: dict[str, JsonValue] = {}
    for key, item in value.items():
        field = find_field(message, key)
        if field is None:
            continue
        is_value = field.message_type is not None and field.message_type.full_name == _VALUE
        if item is None and not is_value:
            continue
        prepared[key] = _prepare_field(field, item, _join(where, field.name), depth)
    return prepared


def _reject_constant(name: str) -> JsonValue:
    raise DecodeError("body", f"invalid JSON: {name} is not a JSON value")


def parse_json(raw: bytes) -> JsonValue:
    """The JSON document in a request body; an empty body is null."""
    if not raw.strip():
        return None
    try:
        return json.loads(raw, parse_constant=_reject_constant)
    except UnicodeDecodeError:
        raise DecodeError("body", "not UTF-8 text") from None
    except json.JSONDecodeError as error:
        raise DecodeError(
            "body", f"invalid JSON: {error.msg} at line {error.lineno} column {error.colno}"
        ) from None
    except RecursionError:
        raise DecodeError("body", "JSON nested too deeply") from None


def _update_mask_field(request: Descriptor) -> FieldDescriptor | None:
    field = request.fields_by_name.get("update_mask")
    if field is None or field.message_type is None or field.is_repeated:
        return None
    return field if field.message_type.full_name == _FIELD_MASK else None


def decode_body(route: Route, payload: JsonValue, request: Message) -> None:
    """Fills `request` from the parsed JSON body according to the route's `body` rule."""
    if route.body is None or payload is None:
        return
    descriptor = descriptor_of(request)
    if route.body == "*":
        document = prepare_message(descriptor, payload)
    else:
        field = descriptor.fields_by_name[route.body]
        document = prepare_message(descriptor, {field.name: payload})
        mask = _update_mask_field(descriptor)
        target = field.message_type
        if (
            mask is not None
            and target is not None
            and not field.is_repeated
            and not target.full_name.startswith("google.protobuf.")
            and isinstance(payload, dict)
        ):
            paths = []
            for key, item in payload.items():
                sub = find_field(target, key)
                if sub is not None and item is not None:
                    paths.append(sub.name)
            getattr(request, mask.name).paths.extend(paths)
    try:
        json_format.ParseDict(document, request, ignore_unknown_fields=True)
    except json_format.ParseError as error:
        raise DecodeError("body", str(error)) from None


def _render_float(value: float) -> JsonValue:
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "Infinity" if value > 0 else "-Infinity"
    return value


def _render_struct_value(value: struct_pb2.Value) -> JsonValue:
    kind = value.WhichOneof("kind")
    if kind == "struct_value":
        return _render_struct(value.struct_value)
    if kind == "list_value":
        return [_render_struct_value(item) for item in value.list_value.values]
    if kind == "number_value":
        number = value.number_value
        # Struct numbers are doubles: integral ones render as JSON integers.
        if number.is_integer() and abs(number) <= _MAX_SAFE_INTEGER:
            return int(number)
        return _render_float(number)
    if kind == "string_value":
        return value.string_value
    if kind == "bool_value":
        return value.bool_value
    return None


def _render_struct(struct: struct_pb2.Struct) -> dict[str, JsonValue]:
    return {key: _render_struct_value(item) for key, item in struct.fields.items()}


def _render_wkt(message: Message) -> JsonValue:
    if isinstance(message, struct_pb2.Struct):
        return _render_struct(message)
    if isinstance(message, struct_pb2.Value):
        return _render_struct_value(message)
    if isinstance(message, struct_pb2.ListValue):
        return [_render_struct_value(item) for item in message.values]
    if message.DESCRIPTOR.full_name in _WRAPPERS:
        field = descriptor_of(message).fields_by_name["value"]
        return _render_scalar(field, getattr(message, field.name))
    return json_format.MessageToDict(message, preserving_proto_field_name=True)


def _render_scalar(field: FieldDescriptor, value: Any) -> JsonValue:
    if field.type == FD.TYPE_ENUM:
        enum = field.enum_type
        assert enum is not None
        return enum_short_name(enum, value)
    if field.type in FLOAT_TYPES:
        return _render_float(value)
    if field.type == FD.TYPE_BYTES:
        return base64.b64encode(value).decode("ascii")
    return value


def _render_value(field: FieldDescriptor, value: Any) -> JsonValue:
    if field.message_type is None:
        return _render_scalar(field, value)
    return render_message(value)


def _map_key(key: object) -> str:
    if isinstance(key, bool):
        return "true" if key else "false"
    return str(key)


def render_field(message: Message, field: FieldDescriptor) -> JsonValue:
    """One field of a message: lists for repeated, null for unset messages and optionals."""
    value = getattr(message, field.name)
    if is_map(field):
        entry = field.message_type
        assert entry is not None
        value_field = entry.fields_by_name["value"]
        return {_map_key(key): _render_value(value_field, value[key]) for key in value}
    if field.is_repeated:
        return [_render_value(field, item) for item in value]
    if field.has_presence and not message.HasField(field.name):
        return None
    return _render_value(field, value)


def render_message(message: Message) -> JsonValue:
    descriptor = descriptor_of(message)
    if descriptor.full_name.startswith("google.protobuf."):
        return _render_wkt(message)
    return {field.name: render_field(message, field) for field in descriptor.fields}


def render_response(route: Route, response: Message) -> JsonValue:
    """The envelope's `data` for a response: the `response_body` field, null for no fields."""
    descriptor = descriptor_of(response)
    if route.response_body is not None:
        return render_field(response, descriptor.fields_by_name[route.response_body])
    if not descriptor.fields:
        return None
    return render_message(response)
