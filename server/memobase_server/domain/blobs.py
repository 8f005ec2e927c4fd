"""Validation of blob payloads by type, before anything is stored."""

from __future__ import annotations

from typing import Any

from memobase_server.domain.errors import InvalidArgument
from memobase_server.domain.models import STORABLE_BLOB_TYPES, BlobType, JsonObject

MESSAGE_ROLES = ("user", "assistant")
MAX_MESSAGES_PER_BLOB = 1000


def _text(value: Any, where: str) -> str:
    if not isinstance(value, str):
        raise InvalidArgument(f"Unable to parse blob: {where} must be a string")
    if "\x00" in value:
        raise InvalidArgument(f"Unable to parse blob: {where} must not contain NUL characters")
    return value


def _optional_text(value: Any, where: str) -> str | None:
    return None if value is None else _text(value, where)


def parse_message(raw: Any, where: str) -> JsonObject:
    """One chat message, keeping only the documented keys (extra keys are dropped)."""
    if not isinstance(raw, dict):
        raise InvalidArgument(f"Unable to parse blob: {where} must be an object")
    role = raw.get("role")
    if role not in MESSAGE_ROLES:
        raise InvalidArgument(f"Unable to parse blob: {where}.role must be 'user' or 'assistant'")
    message: JsonObject = {"role": role, "content": _text(raw.get("content"), f"{where}.content")}
    for key in ("alias", "created_at"):
        value = _optional_text(raw.get(key), f"{where}.{key}")
        if value is not None:
            message[key] = value
    return message


def parse_blob_data(blob_type: BlobType, data: JsonObject | None) -> JsonObject:
    """Returns the normalised payload of an insertable blob, or raises InvalidArgument."""
    if blob_type not in STORABLE_BLOB_TYPES:
        raise InvalidArgument(f"Blob type {blob_type.value} is not supported yet")
    if data is None:
        raise InvalidArgument("Unable to parse blob: blob_data is required")
    if blob_type is BlobType.CHAT:
        messages = data.get("messages")
        if not isinstance(messages, list) or not messages:
            raise InvalidArgument("Unable to parse blob: messages must be a non-empty list")
        if len(messages) > MAX_MESSAGES_PER_BLOB:
            raise InvalidArgument(
                f"Unable to parse blob: at most {MAX_MESSAGES_PER_BLOB} messages per blob"
            )
        return {"messages": [parse_message(m, f"messages[{i}]") for i, m in enumerate(messages)]}
    if blob_type is BlobType.SUMMARY:
        return {"summary": _text(data.get("summary"), "summary")}
    return {"content": _text(data.get("content"), "content")}
