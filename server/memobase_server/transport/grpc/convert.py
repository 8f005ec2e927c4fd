"""Conversions between protobuf messages and domain values, shared by the servicers."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from google.protobuf import json_format, struct_pb2, timestamp_pb2
from google.protobuf.message import Message

from memobase_server.domain.errors import InvalidArgument, MalformedRequest
from memobase_server.domain.models import BlobType, BufferStatus, JsonObject
from memobase_server.domain.profile_selection import ProfileFilter, make_filter
from memobase_server.gen.memobase.v1 import common_pb2

_BLOB_TYPES: dict[int, BlobType] = {
    common_pb2.BLOB_TYPE_CHAT: BlobType.CHAT,
    common_pb2.BLOB_TYPE_SUMMARY: BlobType.SUMMARY,
    common_pb2.BLOB_TYPE_DOC: BlobType.DOC,
    common_pb2.BLOB_TYPE_IMAGE: BlobType.IMAGE,
    common_pb2.BLOB_TYPE_CODE: BlobType.CODE,
    common_pb2.BLOB_TYPE_TRANSCRIPT: BlobType.TRANSCRIPT,
}
_BLOB_TYPES_TO_PROTO = {v: common_pb2.BlobType.ValueType(k) for k, v in _BLOB_TYPES.items()}
_BUFFER_STATUSES: dict[int, BufferStatus] = {
    common_pb2.BUFFER_STATUS_IDLE: BufferStatus.IDLE,
    common_pb2.BUFFER_STATUS_PROCESSING: BufferStatus.PROCESSING,
    common_pb2.BUFFER_STATUS_DONE: BufferStatus.DONE,
    common_pb2.BUFFER_STATUS_FAILED: BufferStatus.FAILED,
}


def blob_type(value: int, field: str = "blob_type") -> BlobType:
    found = _BLOB_TYPES.get(value)
    if found is None:
        raise MalformedRequest(f"{field} must be one of {', '.join(t.value for t in BlobType)}")
    return found


def blob_type_to_proto(value: BlobType) -> common_pb2.BlobType.ValueType:
    return _BLOB_TYPES_TO_PROTO[value]


def buffer_status(value: int) -> BufferStatus:
    found = _BUFFER_STATUSES.get(value)
    if found is None:
        raise MalformedRequest(f"status must be one of {', '.join(s.value for s in BufferStatus)}")
    return found


def struct_or_none(message: Message, field: str) -> JsonObject | None:
    if not message.HasField(field):
        return None
    value: struct_pb2.Struct = getattr(message, field)
    return json_format.MessageToDict(value)


def fill_struct(target: struct_pb2.Struct, value: JsonObject | None) -> None:
    if value is None:
        return
    try:
        target.update(value)
    except (TypeError, ValueError) as exc:
        raise InvalidArgument(f"stored data cannot be represented: {exc}") from None


def fill_timestamp(target: timestamp_pb2.Timestamp, value: datetime) -> None:
    target.FromDatetime(value)


def optional_value(message: Message, field: str) -> Any:
    return getattr(message, field) if message.HasField(field) else None


def profile_filter(request: Any) -> ProfileFilter:
    """The profile filters a request carries (GetProfile, ProactiveTopic: the same fields)."""
    return make_filter(
        topk=optional_value(request, "topk"),
        max_token_size=optional_value(request, "max_token_size"),
        prefer_topics=request.prefer_topics,
        only_topics=request.only_topics,
        max_subtopic_size=optional_value(request, "max_subtopic_size"),
        topic_limits_json=optional_value(request, "topic_limits_json"),
    )
