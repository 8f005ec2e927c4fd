"""Query strings: the SDK's quirks, type conversion and decode errors."""

from __future__ import annotations

import math

import pytest

from memobase_server.gen.memobase.v1 import (
    blob_pb2,
    common_pb2,
    event_pb2,
    profile_pb2,
    project_pb2,
    user_pb2,
)
from memobase_server.transport.gateway.errors import DecodeError
from memobase_server.transport.gateway.query import MAX_QUERY_FIELDS, apply_query, parse_query


def test_doubled_ampersands_repeated_keys_and_blank_values() -> None:
    query = b"max_token_size=1000&prefer_topics=a&&prefer_topics=b&only_topics=x&&only_topics=y"
    assert parse_query(query) == {
        "max_token_size": ["1000"],
        "prefer_topics": ["a", "b"],
        "only_topics": ["x", "y"],
    }
    assert parse_query("search=&x=1&&&") == {"search": [""], "x": ["1"]}
    assert parse_query(b"") == {}


def test_plus_is_space_and_percent_escapes_are_decoded() -> None:
    assert parse_query(b"query=hello+world%21&t=%E4%BD%A0%E5%A5%BD&raw=caf\xc3\xa9") == {
        "query": ["hello world!"],
        "t": ["你好"],
        "raw": ["café"],
    }


def test_sdk_profile_query_fills_repeated_and_optional_fields() -> None:
    request = profile_pb2.GetProfileRequest()
    chats = '[{"role": "user", "content": "hi"}]'
    apply_query(
        request,
        parse_query(
            "max_token_size=1000&prefer_topics=a&&prefer_topics=b&only_topics=x&&only_topics=y"
            f'&max_subtopic_size=3&topic_limits_json={{"interest": 2}}&chats_str={chats}'
        ),
    )
    assert request.max_token_size == 1000
    assert list(request.prefer_topics) == ["a", "b"]
    assert list(request.only_topics) == ["x", "y"]
    assert request.max_subtopic_size == 3
    assert request.topic_limits_json == '{"interest": 2}'
    assert request.chats_str == chats
    assert not request.HasField("topk")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("True", True),
        ("False", False),
        ("true", True),
        ("FALSE", False),
        ("1", True),
        ("0", False),
        ("yes", True),
        ("No", False),
        ("on", True),
        ("off", False),
        ("t", True),
        ("F", False),
        ("y", True),
        ("n", False),
    ],
)
def test_lax_booleans(text: str, expected: bool) -> None:
    request = blob_pb2.InsertBlobRequest()
    apply_query(request, parse_query(f"wait_process={text}"))
    assert request.wait_process is expected
    listing = project_pb2.ListUsersRequest()
    apply_query(listing, parse_query(f"order_desc={text}"))
    assert listing.HasField("order_desc")
    assert listing.order_desc is expected


def test_sdk_get_all_users_query() -> None:
    request = project_pb2.ListUsersRequest()
    apply_query(
        request,
        parse_query("search=&order_by=updated_at&order_desc=False&limit=10&offset=0"),
    )
    assert request.search == ""
    assert request.order_by == project_pb2.USER_ORDER_UPDATED_AT
    assert request.order_desc is False
    assert request.HasField("order_desc")
    assert request.limit == 10
    assert request.offset == 0


@pytest.mark.parametrize("text", ["idle", "IDLE", "BUFFER_STATUS_IDLE", "1"])
def test_enums_accept_short_full_and_numeric_forms(text: str) -> None:
    request = blob_pb2.GetBufferCapacityRequest()
    apply_query(request, parse_query(f"status={text}"))
    assert request.status == common_pb2.BUFFER_STATUS_IDLE


def test_floats_and_ints() -> None:
    request = event_pb2.SearchEventsRequest()
    apply_query(
        request,
        parse_query("query=a+b&topk=10&similarity_threshold=0.2&time_range_in_days=180"),
    )
    assert request.query == "a b"
    assert request.topk == 10
    assert request.similarity_threshold == pytest.approx(0.2)
    assert request.time_range_in_days == 180
    context = profile_pb2.GetContextRequest()
    apply_query(context, parse_query("profile_event_ratio=1e-1&event_similarity_threshold=NaN"))
    assert context.profile_event_ratio == pytest.approx(0.1)
    assert math.isnan(context.event_similarity_threshold)


def test_customize_context_prompt_quote_plus_round_trip() -> None:
    request = profile_pb2.GetContextRequest()
    apply_query(
        request, parse_query("customize_context_prompt=A+%7Bprofile_section%7D+%26+more%2B")
    )
    assert request.customize_context_prompt == "A {profile_section} & more+"


def test_unknown_keys_are_ignored_and_last_value_wins_for_singular_fields() -> None:
    request = blob_pb2.ListBlobsRequest()
    apply_query(request, parse_query("page=1&page=2&unknown=x&also_unknown.nested=3"))
    assert request.page == 2


def test_dotted_paths_and_json_names_reach_nested_fields() -> None:
    request = profile_pb2.AddProfileRequest()
    apply_query(request, parse_query("attributes.topic=interest&attributes.subTopic=movies"))
    assert request.attributes.topic == "interest"
    assert request.attributes.sub_topic == "movies"


def test_skipped_keys_are_not_applied() -> None:
    request = blob_pb2.ListBlobsRequest()
    apply_query(request, parse_query("user_id=x&page=3"), skip={"user_id"})
    assert request.user_id == ""
    assert request.page == 3


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ("page=abc", "page"),
        ("page=1.5", "page"),
        ("page=", "page"),
        ("page=99999999999", "page"),
        ("blob_type=video", "blob_type"),
    ],
)
def test_values_that_do_not_parse_are_decode_errors(query: str, field: str) -> None:
    with pytest.raises(DecodeError) as caught:
        apply_query(blob_pb2.ListBlobsRequest(), parse_query(query))
    assert caught.value.field == field
    assert field in str(caught.value)


@pytest.mark.parametrize(
    ("request_message", "query"),
    [
        (blob_pb2.InsertBlobRequest(), "wait_process=maybe"),
        (event_pb2.SearchEventsRequest(), "similarity_threshold=0.2.3"),
        (event_pb2.SearchEventsRequest(), "similarity_threshold=1_0"),
        (project_pb2.ListUsersRequest(), "offset=-"),
    ],
)
def test_bad_bools_floats_and_ints(
    request_message: blob_pb2.InsertBlobRequest
    | event_pb2.SearchEventsRequest
    | project_pb2.ListUsersRequest,
    query: str,
) -> None:
    with pytest.raises(DecodeError):
        apply_query(request_message, parse_query(query))


def test_bad_enum_error_lists_the_allowed_short_names() -> None:
    with pytest.raises(DecodeError) as caught:
        apply_query(blob_pb2.GetBufferCapacityRequest(), parse_query("status=busy"))
    message = str(caught.value)
    assert "status" in message
    assert "idle" in message
    assert "processing" in message
    assert "Error" not in message


def test_too_many_parameters_is_a_decode_error() -> None:
    with pytest.raises(DecodeError):
        parse_query("&".join(f"k{i}=v" for i in range(MAX_QUERY_FIELDS + 1)))


def test_well_known_message_fields_parse_from_their_json_string_form() -> None:
    request = user_pb2.GetUserResponse()
    apply_query(request, parse_query("created_at=2025-06-01T08:00:00.5Z&id=abc"))
    assert request.created_at.seconds == 1748764800
    assert request.created_at.nanos == 500_000_000
    assert request.id == "abc"
    with pytest.raises(DecodeError) as caught:
        apply_query(request, parse_query("updated_at=yesterday"))
    assert caught.value.field == "updated_at"


def test_plain_message_fields_cannot_be_set_from_text() -> None:
    with pytest.raises(DecodeError):
        apply_query(profile_pb2.AddProfileRequest(), parse_query("attributes=x"))
