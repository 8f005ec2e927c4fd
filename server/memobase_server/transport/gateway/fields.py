"""Field lookup, REST enum names and text → field value conversion (path and query parameters)."""

from __future__ import annotations

import base64
import binascii
import functools
import json
import math
import re
from collections.abc import Sequence

from google.protobuf import json_format
from google.protobuf.descriptor import Descriptor, EnumDescriptor, FieldDescriptor
from google.protobuf.message import Message

from .errors import DecodeError

FD = FieldDescriptor

INT_RANGES: dict[int, tuple[int, int]] = {
    FD.TYPE_INT32: (-(2**31), 2**31 - 1),
    FD.TYPE_SINT32: (-(2**31), 2**31 - 1),
    FD.TYPE_SFIXED32: (-(2**31), 2**31 - 1),
    FD.TYPE_UINT32: (0, 2**32 - 1),
    FD.TYPE_FIXED32: (0, 2**32 - 1),
    FD.TYPE_INT64: (-(2**63), 2**63 - 1),
    FD.TYPE_SINT64: (-(2**63), 2**63 - 1),
    FD.TYPE_SFIXED64: (-(2**63), 2**63 - 1),
    FD.TYPE_UINT64: (0, 2**64 - 1),
    FD.TYPE_FIXED64: (0, 2**64 - 1),
}
FLOAT_TYPES = frozenset({FD.TYPE_DOUBLE, FD.TYPE_FLOAT})

_TRUE = frozenset({"true", "1", "yes", "on", "t", "y"})
_FALSE = frozenset({"false", "0", "no", "off", "f", "n"})
_INT_RE = re.compile(r"[+-]?[0-9]+")
_FLOAT_RE = re.compile(r"[+-]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")
_SPECIAL_FLOATS = {"nan": math.nan, "infinity": math.inf, "-infinity": -math.inf, "inf": math.inf}
_CAMEL_BOUNDARY = re.compile(r"(?<=[a-z0-9])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])")

ScalarValue = bool | int | float | str | bytes


def descriptor_of(message: Message) -> Descriptor:
    descriptor = message.DESCRIPTOR
    assert isinstance(descriptor, Descriptor)
    return descriptor


def is_map(field: FieldDescriptor) -> bool:
    message = field.message_type
    return message is not None and message.GetOptions().map_entry


def find_field(message: Descriptor, name: str) -> FieldDescriptor | None:
    """A field by its proto name or its JSON (lowerCamel) name."""
    field = message.fields_by_name.get(name)
    if field is not None:
        return field
    return next((f for f in message.fields if f.json_name == name), None)


def resolve_path(message: Descriptor, dotted: str) -> list[FieldDescriptor] | None:
    """The chain of fields a dotted path (`a.b.c`) names; None if it names no field."""
    chain: list[FieldDescriptor] = []
    current: Descriptor | None = message
    for part in dotted.split("."):
        if current is None:
            return None
        field = find_field(current, part)
        if field is None:
            return None
        chain.append(field)
        current = None if field.is_repeated else field.message_type
    return chain


def leaf_parent(message: Message, chain: Sequence[FieldDescriptor]) -> Message:
    """The message holding the last field of `chain`, creating intermediate messages."""
    for field in chain[:-1]:
        message = getattr(message, field.name)
    return message


@functools.cache
def enum_prefix(enum: EnumDescriptor) -> str:
    return _CAMEL_BOUNDARY.sub("_", enum.name).upper() + "_"


def enum_short_name(enum: EnumDescriptor, number: int) -> str | int:
    """The REST form of an enum value: `BLOB_TYPE_CHAT` → `chat`; unknown numbers stay numbers."""
    value = enum.values_by_number.get(number)
    if value is None:
        return number
    prefix = enum_prefix(enum)
    name = value.name
    return (name[len(prefix) :] if name.startswith(prefix) else name).lower()


@functools.cache
def _enum_lookup(enum: EnumDescriptor) -> dict[str, str]:
    lookup: dict[str, str] = {}
    for value in enum.values:
        short = enum_short_name(enum, value.number)
        lookup.setdefault(str(short).lower(), value.name)
        lookup.setdefault(value.name.lower(), value.name)
    return lookup


def enum_full_name(enum: EnumDescriptor, text: str, where: str) -> str:
    """The full value name for a REST short name or a full name (case-insensitive)."""
    name = _enum_lookup(enum).get(text.lower())
    if name is None:
        allowed = ", ".join(str(enum_short_name(enum, v.number)) for v in enum.values)
        raise DecodeError(where, f"invalid value {text!r}; expected one of: {allowed}")
    return name


def parse_bool(text: str, where: str) -> bool:
    lowered = text.strip().lower()
    if lowered in _TRUE:
        return True
    if lowered in _FALSE:
        return False
    raise DecodeError(where, f"invalid boolean {text!r}")


def parse_int(field: FieldDescriptor, text: str, where: str) -> int:
    stripped = text.strip()
    if not _INT_RE.fullmatch(stripped):
        raise DecodeError(where, f"invalid integer {text!r}")
    return check_int_range(field, int(stripped), where)


def check_int_range(field: FieldDescriptor, value: int, where: str) -> int:
    low, high = INT_RANGES[field.type]
    if not low <= value <= high:
        raise DecodeError(where, f"integer {value} out of range [{low}, {high}]")
    return value


def parse_float(text: str, where: str) -> float:
    stripped = text.strip()
    special = _SPECIAL_FLOATS.get(stripped.lower())
    if special is not None:
        return special
    if not _FLOAT_RE.fullmatch(stripped):
        raise DecodeError(where, f"invalid number {text!r}")
    return float(stripped)


def parse_bytes(text: str, where: str) -> bytes:
    padded = text + "=" * (-len(text) % 4)
    try:
        if "-" in text or "_" in text:
            return base64.urlsafe_b64decode(padded)
        return base64.b64decode(padded, validate=True)
    except (binascii.Error, ValueError):
        raise DecodeError(where, "invalid base64") from None


def parse_scalar(field: FieldDescriptor, text: str, where: str) -> ScalarValue:
    """Converts one text value (path segment or query value) for a non-message field."""
    if field.type == FD.TYPE_STRING:
        return text
    if field.type == FD.TYPE_BOOL:
        return parse_bool(text, where)
    if field.type in INT_RANGES:
        return parse_int(field, text, where)
    if field.type in FLOAT_TYPES:
        return parse_float(text, where)
    if field.type == FD.TYPE_ENUM:
        enum = field.enum_type
        assert enum is not None
        stripped = text.strip()
        if _INT_RE.fullmatch(stripped):
            return int(stripped)
        return enum.values_by_name[enum_full_name(enum, stripped, where)].number
    if field.type == FD.TYPE_BYTES:
        return parse_bytes(text, where)
    raise DecodeError(where, "this field cannot be set from text")


def _text_to_json(message: Descriptor, text: str, where: str) -> object:
    """The JSON value a text is for a well-known message type, for json_format."""
    if message.full_name.startswith("google.protobuf.") and message.full_name.endswith("Value"):
        value_field = message.fields_by_name.get("value")
        if value_field is not None and value_field.type != FD.TYPE_BYTES:
            return parse_scalar(value_field, text, where)
    return text


def set_from_texts(
    message: Message, chain: Sequence[FieldDescriptor], texts: Sequence[str], where: str
) -> None:
    """Sets the field at the end of `chain` from text values (repeated: all; singular: last)."""
    field = chain[-1]
    parent = leaf_parent(message, chain)
    target = field.message_type
    if field.is_repeated:
        if target is not None:
            raise DecodeError(where, "this field cannot be set from text")
        container = getattr(parent, field.name)
        del container[:]
        container.extend(parse_scalar(field, text, where) for text in texts)
        return
    text = texts[-1]
    if target is None:
        setattr(parent, field.name, parse_scalar(field, text, where))
        return
    if not target.full_name.startswith("google.protobuf."):
        raise DecodeError(where, "this field cannot be set from text")
    holder = getattr(parent, field.name)
    try:
        json_format.Parse(json.dumps(_text_to_json(target, text, where)), holder)
    except json_format.ParseError as error:
        raise DecodeError(where, str(error)) from None
