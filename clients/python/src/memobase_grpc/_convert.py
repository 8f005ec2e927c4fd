"""Protobuf messages <-> the client's dataclasses."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from google.protobuf import json_format, struct_pb2, timestamp_pb2

from memobase_grpc._gen.memobase.v1 import common_pb2
from memobase_grpc.types import (
    Blob,
    BlobType,
    BufferStatus,
    ChatBlob,
    ChatMessage,
    DocBlob,
    EventData,
    EventGistData,
    EventTag,
    ProfileDelta,
    SummaryBlob,
    UserEvent,
    UserEventGist,
    UserProfile,
)

_BLOB_TYPES: dict[BlobType, common_pb2.BlobType.ValueType] = {
    BlobType.chat: common_pb2.BLOB_TYPE_CHAT,
    BlobType.summary: common_pb2.BLOB_TYPE_SUMMARY,
    BlobType.doc: common_pb2.BLOB_TYPE_DOC,
    BlobType.image: common_pb2.BLOB_TYPE_IMAGE,
    BlobType.code: common_pb2.BLOB_TYPE_CODE,
    BlobType.transcript: common_pb2.BLOB_TYPE_TRANSCRIPT,
}
_BLOB_TYPE_NAMES = {value: name for name, value in _BLOB_TYPES.items()}

_BUFFER_STATUSES: dict[str, common_pb2.BufferStatus.ValueType] = {
    "idle": common_pb2.BUFFER_STATUS_IDLE,
    "processing": common_pb2.BUFFER_STATUS_PROCESSING,
    "done": common_pb2.BUFFER_STATUS_DONE,
    "failed": common_pb2.BUFFER_STATUS_FAILED,
}


def blob_type(value: BlobType | str) -> common_pb2.BlobType.ValueType:
    try:
        return _BLOB_TYPES[BlobType(value)]
    except ValueError:
        raise ValueError(f"Unknown blob type {value!r}") from None


def buffer_status(value: BufferStatus) -> common_pb2.BufferStatus.ValueType:
    try:
        return _BUFFER_STATUSES[value]
    except KeyError:
        raise ValueError(f"Unknown buffer status {value!r}") from None


def struct(data: Mapping[str, Any] | None) -> struct_pb2.Struct | None:
    if data is None:
        return None
    out = struct_pb2.Struct()
    out.update(dict(data))
    return out


def from_struct(message: struct_pb2.Struct) -> dict[str, Any]:
    return json_format.MessageToDict(message)


def timestamp(message: timestamp_pb2.Timestamp, present: bool) -> datetime | None:
    if not present:
        return None
    return message.ToDatetime(tzinfo=UTC)


def blob_input(blob: Blob) -> common_pb2.BlobInput:
    return common_pb2.BlobInput(
        blob_type=blob_type(blob.type),
        blob_data=struct(blob.get_blob_data()),
        fields=struct(blob.fields),
    )


def blob(
    kind: common_pb2.BlobType.ValueType,
    data: dict[str, Any],
    fields: dict[str, Any] | None,
    created_at: datetime | None,
) -> Blob:
    name = _BLOB_TYPE_NAMES.get(kind)
    at = created_at
    if name is BlobType.chat:
        messages = [ChatMessage.coerce(m) for m in data.get("messages", [])]
        return ChatBlob(messages=messages, fields=fields, created_at=at)
    if name is BlobType.summary:
        return SummaryBlob(summary=str(data.get("summary", "")), fields=fields, created_at=at)
    if name is BlobType.doc:
        return DocBlob(content=str(data.get("content", "")), fields=fields, created_at=at)
    raise NotImplementedError(f"blob type {name or kind} is not supported by this client")


def profile(message: common_pb2.Profile) -> UserProfile:
    attributes = message.attributes
    return UserProfile(
        id=message.id,
        content=message.content,
        topic=attributes.topic,
        sub_topic=attributes.sub_topic,
        created_at=timestamp(message.created_at, message.HasField("created_at")),
        updated_at=timestamp(message.updated_at, message.HasField("updated_at")),
        update_hits=attributes.update_hits if attributes.HasField("update_hits") else None,
    )


def event(message: common_pb2.Event) -> UserEvent:
    data = message.event_data
    return UserEvent(
        id=message.id,
        event_data=EventData(
            profile_delta=[
                ProfileDelta(
                    content=d.content,
                    attributes={"topic": d.attributes.topic, "sub_topic": d.attributes.sub_topic},
                )
                for d in data.profile_delta
            ],
            event_tip=data.event_tip if data.HasField("event_tip") else None,
            event_tags=[EventTag(tag=t.tag, value=t.value) for t in data.event_tags],
        ),
        created_at=timestamp(message.created_at, message.HasField("created_at")),
        updated_at=timestamp(message.updated_at, message.HasField("updated_at")),
        similarity=message.similarity if message.HasField("similarity") else None,
    )


def gist(message: common_pb2.EventGist) -> UserEventGist:
    return UserEventGist(
        id=message.id,
        gist_data=EventGistData(content=message.gist_data.content),
        created_at=timestamp(message.created_at, message.HasField("created_at")),
        updated_at=timestamp(message.updated_at, message.HasField("updated_at")),
        similarity=message.similarity if message.HasField("similarity") else None,
    )


def event_data(data: Mapping[str, Any]) -> tuple[common_pb2.EventData, list[str]]:
    """An EventData from the SDK's dict (`event_tip`, `profile_delta`, `event_tags`) and the
    top-level keys given, for the update mask."""
    message = common_pb2.EventData()
    json_format.ParseDict(dict(data), message)
    return message, sorted(data)
