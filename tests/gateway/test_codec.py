"""JSON ↔ protobuf: request bodies, path/query merging and response rendering."""

from __future__ import annotations

import json
from typing import Any

import pytest
from google.protobuf import json_format, struct_pb2, timestamp_pb2

from memobase_server.gen.memobase.v1 import (
    blob_pb2,
    common_pb2,
    event_pb2,
    profile_pb2,
    project_pb2,
    user_pb2,
)
from memobase_server.transport.gateway import Router, service_descriptors
from memobase_server.transport.gateway.app import build_request, encode_json
from memobase_server.transport.gateway.codec import (
    decode_body,
    parse_json,
    render_message,
    render_response,
)
from memobase_server.transport.gateway.errors import DecodeError
from memobase_server.transport.gateway.routes import Route, RouteMatch

U = "5f0c8a3e-2b1d-4c6e-9a7f-1e2d3c4b5a69"
E = "0b7d6c5e-4f3a-4b2c-8d1e-0f9a8b7c6d5e"

ROUTER = Router.from_services(service_descriptors())


def match(method: str, path: str) -> RouteMatch:
    return ROUTER.match(method, path)


def route(method: str, path: str) -> Route:
    return match(method, path).route


def request_for(method: str, path: str, body: object = None, query: str = "") -> Any:
    raw = b"" if body is None else json.dumps(body).encode()
    return build_request(match(method, path), raw, query)


# --- parsing -------------------------------------------------------------------------------


def test_sdk_insert_body_with_enum_short_name_and_query_and_path() -> None:
    body = {
        "blob_type": "chat",
        "fields": None,
        "blob_data": {"messages": [{"role": "user", "content": "hi", "alias": None}]},
    }
    request = request_for(
        "POST", f"/api/v1/blobs/insert/{U}", body, "wait_process=True&idempotency_key=k1"
    )
    assert isinstance(request, blob_pb2.InsertBlobRequest)
    assert request.user_id == U
    assert request.wait_process is True
    assert request.idempotency_key == "k1"
    assert request.blob.blob_type == common_pb2.BLOB_TYPE_CHAT
    assert not request.blob.HasField("fields")
    assert json_format.MessageToDict(request.blob.blob_data) == {
        "messages": [{"role": "user", "content": "hi", "alias": None}]
    }


@pytest.mark.parametrize("blob_type", ["summary", "SUMMARY", "BLOB_TYPE_SUMMARY", 2])
def test_enum_full_names_and_numbers_are_accepted(blob_type: object) -> None:
    request = request_for(
        "POST", f"/api/v1/blobs/insert/{U}", {"blob_type": blob_type, "blob_data": {}}
    )
    assert request.blob.blob_type == common_pb2.BLOB_TYPE_SUMMARY


def test_enum_path_parameters_use_short_names() -> None:
    request = request_for("GET", f"/api/v1/users/blobs/{U}/doc", query="page=1&page_size=5")
    assert request.blob_type == common_pb2.BLOB_TYPE_DOC
    assert (request.page, request.page_size) == (1, 5)
    with pytest.raises(DecodeError) as caught:
        request_for("GET", f"/api/v1/users/blobs/{U}/video")
    assert caught.value.field == "blob_type"


def test_unknown_enum_name_in_body_is_a_decode_error_naming_the_field() -> None:
    with pytest.raises(DecodeError) as caught:
        request_for("POST", f"/api/v1/blobs/insert/{U}", {"blob_type": "video"})
    assert caught.value.field == "blob.blob_type"
    assert "chat" in caught.value.problem


def test_put_user_puts_the_whole_body_into_the_struct_field() -> None:
    request = request_for("PUT", f"/api/v1/users/{U}", {"data": {"a": 1, "b": [True, None]}})
    assert isinstance(request, user_pb2.UpdateUserRequest)
    assert request.user_id == U
    assert json_format.MessageToDict(request.data) == {"data": {"a": 1, "b": [True, None]}}
    nulled = request_for("PUT", f"/api/v1/users/{U}", {"data": None})
    assert nulled.HasField("data")
    assert nulled.data.fields["data"].WhichOneof("kind") == "null_value"
    bare = request_for("PUT", f"/api/v1/users/{U}", {"name": "Ann", "age": 30})
    assert dict(bare.data) == {"name": "Ann", "age": 30}


@pytest.mark.parametrize("body", [[1, 2], "text", 5, True])
def test_struct_body_must_be_an_object(body: object) -> None:
    with pytest.raises(DecodeError) as caught:
        request_for("PUT", f"/api/v1/users/{U}", body)
    assert caught.value.field == "data"


def test_sdk_create_user_body_with_nulls() -> None:
    request = request_for("POST", "/api/v1/users", {"data": None, "id": None})
    assert request == user_pb2.CreateUserRequest()
    request = request_for("POST", "/api/v1/users", {"data": {"k": "v"}, "id": U, "extra": 1})
    assert request.id == U
    assert request.data["k"] == "v"


def test_empty_body_is_an_empty_message() -> None:
    assert build_request(match("POST", "/api/v1/users"), b"", "") == user_pb2.CreateUserRequest()
    assert build_request(match("POST", "/api/v1/users"), b"  \n", "") == (
        user_pb2.CreateUserRequest()
    )
    assert build_request(match("POST", "/api/v1/users"), b"null", "") == (
        user_pb2.CreateUserRequest()
    )


def test_update_mask_is_filled_from_the_body_keys() -> None:
    body: dict[str, object] = {
        "event_tip": "- new tip",
        "profile_delta": None,
        "eventTags": [],
        "bogus": 1,
    }
    request = request_for("PUT", f"/api/v1/users/event/{U}/{E}", body)
    assert isinstance(request, event_pb2.UpdateEventRequest)
    assert (request.user_id, request.event_id) == (U, E)
    assert list(request.update_mask.paths) == ["event_tip", "event_tags"]
    assert request.event_data.event_tip == "- new tip"
    assert list(request.event_data.event_tags) == []


def test_update_mask_from_the_query_wins() -> None:
    request = request_for(
        "PUT", f"/api/v1/users/event/{U}/{E}", {"event_tip": "x"}, "update_mask=eventTags"
    )
    assert list(request.update_mask.paths) == ["event_tags"]


def test_profile_body_star_and_nested_messages() -> None:
    body = {"content": "likes jazz", "attributes": {"topic": "interest", "sub_topic": "music"}}
    request = request_for("PUT", f"/api/v1/users/profile/{U}/{E}", body)
    assert isinstance(request, profile_pb2.UpdateProfileRequest)
    assert request.profile_id == E
    assert request.attributes.sub_topic == "music"
    kept = request_for(
        "PUT", f"/api/v1/users/profile/{U}/{E}", {"content": "x", "attributes": None}
    )
    assert not kept.HasField("attributes")


def test_path_parameters_win_over_the_body() -> None:
    request = request_for(
        "POST", f"/api/v1/users/profile/{U}", {"user_id": "other", "content": "c"}
    )
    assert request.user_id == U


def test_query_parameters_are_merged_over_the_body() -> None:
    request = request_for("POST", "/api/v1/users", {"id": "from-body"}, "id=from-query")
    assert request.id == "from-query"
    request = request_for("PUT", f"/api/v1/users/{U}", {"k": 1}, "user_id=other&unknown=1")
    assert request.user_id == U


def test_profile_config_null_is_unset() -> None:
    request = request_for("POST", "/api/v1/project/profile_config", {"profile_config": None})
    assert not request.HasField("profile_config")
    request = request_for("POST", "/api/v1/project/profile_config", {"profile_config": ""})
    assert request.HasField("profile_config")


def test_proactive_body_field_is_a_message() -> None:
    body = {"messages": [{"role": "user", "content": "hi"}], "agent_context": "ctx"}
    request = request_for("POST", f"/api/v1/users/roleplay/proactive/{U}", body, "topk=3")
    assert request.chat.messages[0].content == "hi"
    assert request.chat.agent_context == "ctx"
    assert request.topk == 3


@pytest.mark.parametrize(
    ("raw", "field"),
    [
        (b"{", "body"),
        (b"{'a': 1}", "body"),
        (b"\xff\xfe", "body"),
        (b'{"content": NaN}', "body"),
        (b"[1, 2]", "body"),
        (b'"text"', "body"),
        (b'{"content": 5}', "content"),
        (b'{"content": "c", "attributes": "x"}', "attributes"),
        (b'{"attributes": {"topic": ["a"]}}', "attributes.topic"),
        (b'{"attributes": {"update_hits": "many"}}', "attributes.update_hits"),
        (b'{"attributes": {"update_hits": 1.5}}', "attributes.update_hits"),
        (b'{"attributes": {"update_hits": true}}', "attributes.update_hits"),
    ],
)
def test_malformed_json_and_wrong_types_are_decode_errors(raw: bytes, field: str) -> None:
    with pytest.raises(DecodeError) as caught:
        build_request(match("POST", f"/api/v1/users/profile/{U}"), raw, "")
    assert caught.value.field == field
    text = str(caught.value)
    assert "ParseError" not in text
    assert "Traceback" not in text


def test_wrong_types_in_repeated_and_timestamp_fields() -> None:
    with pytest.raises(DecodeError) as caught:
        request_for("PUT", f"/api/v1/users/event/{U}/{E}", {"profile_delta": {"a": 1}})
    assert caught.value.field == "event_data.profile_delta"
    with pytest.raises(DecodeError) as caught:
        request_for("PUT", f"/api/v1/users/event/{U}/{E}", {"event_tags": [None]})
    assert caught.value.field == "event_data.event_tags[0]"


def test_ignored_timestamps_are_accepted_in_any_form() -> None:
    for value in ("2025-06-01T08:00:00", "not a time", 12, None):
        request_for("POST", "/api/v1/users", {"created_at": value, "updated_at": value})


def test_decode_body_ignores_bodies_for_routes_without_a_body_rule() -> None:
    request = user_pb2.GetUserRequest()
    decode_body(route("GET", f"/api/v1/users/{U}"), {"user_id": "x"}, request)
    assert request.user_id == ""


def test_parse_json_empty_is_null() -> None:
    assert parse_json(b"") is None
    assert parse_json(b'{"a": [1]}') == {"a": [1]}


# --- rendering -----------------------------------------------------------------------------


def _timestamp(text: str) -> timestamp_pb2.Timestamp:
    stamp = timestamp_pb2.Timestamp()
    stamp.FromJsonString(text)
    return stamp


def test_render_enums_as_short_names_and_every_field_present() -> None:
    response = blob_pb2.GetBlobResponse(blob_type=common_pb2.BLOB_TYPE_CHAT)
    response.blob_data.update({"messages": [{"role": "user", "content": "hi"}]})
    response.created_at.CopyFrom(_timestamp("2025-06-01T08:00:00.123456Z"))
    assert render_response(route("GET", f"/api/v1/blobs/{U}/{E}"), response) == {
        "blob_type": "chat",
        "blob_data": {"messages": [{"role": "user", "content": "hi"}]},
        "fields": None,
        "created_at": "2025-06-01T08:00:00.123456Z",
        "updated_at": None,
    }


def test_render_unknown_enum_numbers_as_numbers() -> None:
    response = blob_pb2.GetBlobResponse(blob_type=42)  # type: ignore[arg-type]
    rendered = render_message(response)
    assert rendered["blob_type"] == 42


def test_render_int64_as_numbers_and_zero_values() -> None:
    response = project_pb2.ListUsersResponse(count=2**40)
    user = response.users.add(id=U, project_id="__root__", profile_count=2**53 + 1)
    user.additional_fields.update({"age": 30, "ratio": 0.5})
    rendered = render_response(route("GET", "/api/v1/project/users"), response)
    assert rendered["count"] == 2**40
    first = rendered["users"][0]
    assert first["profile_count"] == 2**53 + 1
    assert first["event_count"] == 0
    assert first["additional_fields"] == {"age": 30, "ratio": 0.5}
    assert isinstance(first["additional_fields"]["age"], int)
    assert first["created_at"] is None
    encoded = encode_json(rendered)
    assert b'"count":1099511627776' in encoded
    assert b'"age":30' in encoded
    assert b'"age":30.0' not in encoded


def test_render_unset_optionals_and_messages_as_null() -> None:
    billing = render_message(project_pb2.GetBillingResponse())
    assert billing == {"token_left": None, "next_refill_at": None, "project_token_cost_month": 0}
    billing = render_message(project_pb2.GetBillingResponse(token_left=0))
    assert billing["token_left"] == 0
    user = render_message(user_pb2.GetUserResponse(id=U))
    assert user == {"data": None, "id": U, "created_at": None, "updated_at": None}


def test_render_events_and_profiles_for_the_sdk() -> None:
    events = event_pb2.ListEventsResponse()
    event = events.events.add(id=E)
    event.event_data.event_tags.add(tag="emotion", value="happy")
    rendered = render_response(route("GET", f"/api/v1/users/event/{U}"), events)
    assert rendered == {
        "events": [
            {
                "id": E,
                "event_data": {
                    "profile_delta": [],
                    "event_tip": None,
                    "event_tags": [{"tag": "emotion", "value": "happy"}],
                },
                "created_at": None,
                "updated_at": None,
                "similarity": None,
            }
        ],
        "gists": [],
    }
    profiles = profile_pb2.GetProfileResponse()
    profiles.profiles.add(
        id=U, content="c", attributes=common_pb2.ProfileAttributes(topic="t", sub_topic="s")
    )
    attributes = render_message(profiles)["profiles"][0]["attributes"]
    assert attributes == {"topic": "t", "sub_topic": "s", "update_hits": None}


def test_response_body_renders_only_that_field() -> None:
    flush = route("POST", f"/api/v1/users/buffer/{U}/chat")
    assert render_response(flush, blob_pb2.FlushBufferResponse()) == []
    response = blob_pb2.FlushBufferResponse()
    response.chat_results.add(add_profiles=[U])
    assert render_response(flush, response) == [
        {"event_id": None, "add_profiles": [U], "update_profiles": [], "delete_profiles": []}
    ]
    usage = project_pb2.GetDailyUsageResponse()
    usage.usages.add(date="2025-06-01", total_insert=3)
    assert render_response(route("GET", "/api/v1/project/usage"), usage) == [
        {
            "date": "2025-06-01",
            "total_insert": 3,
            "total_success_insert": 0,
            "total_input_token": 0,
            "total_output_token": 0,
        }
    ]


def test_empty_response_messages_render_as_null() -> None:
    assert render_response(
        route("DELETE", f"/api/v1/users/{U}"), user_pb2.DeleteUserResponse()
    ) is (None)
    assert (
        render_response(route("GET", "/api/v1/healthcheck"), project_pb2.HealthcheckResponse())
        is None
    )


def test_render_struct_special_values() -> None:
    struct = struct_pb2.Struct()
    struct.update({"big": 1e300, "neg": -2.0, "nested": {"list": [1, "a", None, False]}})
    struct.fields["nan"].number_value = float("nan")
    rendered = render_message(struct)
    assert rendered["neg"] == -2
    assert isinstance(rendered["neg"], int)
    assert rendered["big"] == 1e300
    assert rendered["nested"] == {"list": [1, "a", None, False]}
    assert rendered["nan"] == "NaN"
    json.loads(encode_json(rendered))
