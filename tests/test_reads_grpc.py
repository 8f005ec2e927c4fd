"""Profile, event and context RPCs over gRPC with the generated stubs."""

from __future__ import annotations

import uuid

import grpc
import pytest
from google.protobuf import field_mask_pb2

from memobase_server.gen.memobase.v1 import (
    blob_pb2,
    common_pb2,
    event_pb2,
    event_pb2_grpc,
    profile_pb2,
    user_pb2,
)
from tests.conftest import ScriptedLLM, Stubs


@pytest.fixture
def user_id(root: Stubs) -> str:
    reply = root.users.CreateUser(user_pb2.CreateUserRequest(), metadata=root.metadata)
    created: str = reply.id
    return created


def _add(root: Stubs, user_id: str, content: str, topic: str, sub_topic: str) -> str:
    reply = root.profiles.AddProfile(
        profile_pb2.AddProfileRequest(
            user_id=user_id,
            content=content,
            attributes=common_pb2.ProfileAttributes(topic=topic, sub_topic=sub_topic),
        ),
        metadata=root.metadata,
    )
    slot: str = reply.id
    return slot


def _context(root: Stubs, **fields: object) -> str:
    reply = root.profiles.GetContext(
        profile_pb2.GetContextRequest(**fields),  # type: ignore[arg-type]
        metadata=root.metadata,
    )
    text: str = reply.context
    return text


def _events(root: Stubs) -> event_pb2_grpc.EventServiceStub:
    return event_pb2_grpc.EventServiceStub(root.channel)


def _flush_chat(root: Stubs, user_id: str, text: str) -> None:
    chat = common_pb2.BlobInput(blob_type=common_pb2.BLOB_TYPE_CHAT)
    chat.blob_data.update({"messages": [{"role": "user", "content": text}]})
    root.blobs.InsertBlob(
        blob_pb2.InsertBlobRequest(user_id=user_id, blob=chat), metadata=root.metadata
    )
    root.blobs.FlushBuffer(
        blob_pb2.FlushBufferRequest(
            user_id=user_id, buffer_type=common_pb2.BLOB_TYPE_CHAT, wait_process=True
        ),
        metadata=root.metadata,
    )


def test_context_budgets_and_template(root: Stubs, user_id: str, llm: ScriptedLLM) -> None:
    _add(root, user_id, "Ada", "basic_info", "name")
    _flush_chat(root, user_id, "I live in Quito.")
    both = _context(
        root, user_id=user_id, customize_context_prompt="{profile_section}|{event_section}"
    )
    profile, events = both.split("|")
    assert "basic_info::name: Ada" in profile and "Quito" in events
    no_profile = _context(
        root, user_id=user_id, profile_event_ratio=0.0, customize_context_prompt="{profile_section}"
    )
    assert no_profile == ""
    no_room = _context(
        root,
        user_id=user_id,
        max_token_size=10,
        profile_event_ratio=1.0,
        customize_context_prompt="{event_section}",
    )
    assert no_room == ""  # the profile took the whole budget
    filled = _context(
        root,
        user_id=user_id,
        max_token_size=200,
        profile_event_ratio=1.0,
        fill_window_with_events=True,
        customize_context_prompt="{event_section}",
    )
    assert "Quito" in filled
    only_work = _context(
        root, user_id=user_id, only_topics=["work"], customize_context_prompt="{profile_section}"
    )
    assert only_work == ""


def test_context_rejects_bad_parameters(root: Stubs, user_id: str) -> None:
    for fields in (
        {"profile_event_ratio": 1.5},
        {"profile_event_ratio": -0.1},
        {"max_token_size": -1},
        {"chats_str": "not json"},
        {"topic_limits_json": "[1]"},
        {"time_range_in_days": 0},
    ):
        with pytest.raises(grpc.RpcError) as err:
            _context(root, user_id=user_id, **fields)
        assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT, fields


def test_update_event_with_a_field_mask(root: Stubs, user_id: str, llm: ScriptedLLM) -> None:
    _flush_chat(root, user_id, "I work at Initech. #topic=job")
    events = _events(root)
    [event] = events.ListEvents(
        event_pb2.ListEventsRequest(user_id=user_id), metadata=root.metadata
    ).events
    assert [(t.tag, t.value) for t in event.event_data.event_tags] == [("topic", "job")]
    events.UpdateEvent(
        event_pb2.UpdateEventRequest(
            user_id=user_id,
            event_id=event.id,
            event_data=common_pb2.EventData(),  # empty tags, and the mask says: replace them
            update_mask=field_mask_pb2.FieldMask(paths=["event_tags"]),
        ),
        metadata=root.metadata,
    )
    [after] = events.ListEvents(
        event_pb2.ListEventsRequest(user_id=user_id), metadata=root.metadata
    ).events
    assert list(after.event_data.event_tags) == []
    assert after.event_data.event_tip == event.event_data.event_tip
    assert list(after.event_data.profile_delta) == list(event.event_data.profile_delta)
    tagged = events.SearchEventsByTags(
        event_pb2.SearchEventsByTagsRequest(user_id=user_id, tags="topic"), metadata=root.metadata
    )
    assert list(tagged.events) == []


def test_unknown_ids_and_bad_values(root: Stubs, user_id: str) -> None:
    events = _events(root)
    missing = str(uuid.uuid4())
    with pytest.raises(grpc.RpcError) as err:
        events.DeleteEvent(
            event_pb2.DeleteEventRequest(user_id=user_id, event_id=missing), metadata=root.metadata
        )
    assert err.value.code() == grpc.StatusCode.NOT_FOUND
    for request in (
        event_pb2.ListEventsRequest(user_id=user_id, topk=0),
        event_pb2.SearchEventsByTagsRequest(user_id=user_id, tag_values="novalue"),
    ):
        call = (
            events.ListEvents
            if isinstance(request, event_pb2.ListEventsRequest)
            else (events.SearchEventsByTags)
        )
        with pytest.raises(grpc.RpcError) as err:
            call(request, metadata=root.metadata)  # type: ignore[arg-type]
        assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    with pytest.raises(grpc.RpcError) as err:
        events.SearchEventGists(
            event_pb2.SearchEventGistsRequest(user_id=user_id, query=""), metadata=root.metadata
        )
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
