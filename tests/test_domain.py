"""Pure domain rules: ids, blob payloads, rendering, the update-user unwrap, token counts."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest

from memobase_server.domain.blobs import parse_blob_data
from memobase_server.domain.errors import InvalidArgument, MalformedRequest
from memobase_server.domain.ids import idempotent_id, parse_uuid
from memobase_server.domain.models import BlobType
from memobase_server.domain.tokens import count_tokens
from memobase_server.pipeline.render import render_blob
from memobase_server.services.users import unwrap_user_data


def test_parse_uuid_accepts_v4_v5_and_canonicalises() -> None:
    v4 = uuid.uuid4()
    assert parse_uuid(str(v4).upper(), "id") == str(v4)
    v5 = uuid.uuid5(uuid.NAMESPACE_DNS, "x")
    assert parse_uuid(str(v5), "id") == str(v5)
    with pytest.raises(MalformedRequest):
        parse_uuid(str(uuid.uuid1()), "id")
    with pytest.raises(MalformedRequest):
        parse_uuid("nope", "id")


def test_idempotent_ids_are_stable_and_scoped() -> None:
    assert idempotent_id("p:u", "k") == idempotent_id("p:u", "k")
    assert idempotent_id("p:u", "k") != idempotent_id("p:v", "k")
    assert uuid.UUID(idempotent_id("p:u", "k")).version == 5
    with pytest.raises(InvalidArgument):
        idempotent_id("p:u", "")


@pytest.mark.parametrize(
    ("body", "stored"),
    [
        ({"data": {"a": 1}}, {"a": 1}),
        ({"data": None}, None),
        ({"a": 1}, {"a": 1}),
        ({"data": 1}, {"data": 1}),
        ({"data": {"a": 1}, "b": 2}, {"data": {"a": 1}, "b": 2}),
        (None, None),
    ],
)
def test_update_user_unwraps_only_the_sdk_wrapper(
    body: dict[str, object] | None, stored: dict[str, object] | None
) -> None:
    assert unwrap_user_data(body) == stored


def test_chat_payload_is_normalised() -> None:
    parsed = parse_blob_data(
        BlobType.CHAT,
        {"messages": [{"role": "user", "content": "hi", "alias": None, "extra": 1}], "other": True},
    )
    assert parsed == {"messages": [{"role": "user", "content": "hi"}]}


def test_unsupported_types_are_refused_before_storage() -> None:
    for kind in (BlobType.IMAGE, BlobType.CODE, BlobType.TRANSCRIPT):
        with pytest.raises(InvalidArgument, match="not supported"):
            parse_blob_data(kind, {"content": "x"})


def test_render_chat_and_summary() -> None:
    stored = datetime(2025, 3, 1, 23, 30, tzinfo=UTC)
    chat = {
        "messages": [
            {"role": "user", "content": "hi", "alias": "Ana"},
            {"role": "assistant", "content": "hello", "created_at": "yesterday"},
        ]
    }
    assert render_blob(BlobType.CHAT, chat, stored, None) == (
        "[2025/03/01] Ana(user): hi\n[yesterday] assistant: hello"
    )
    assert render_blob(BlobType.CHAT, chat, stored, ZoneInfo("Asia/Tokyo")).startswith(
        "[2025/03/02]"
    )
    assert render_blob(BlobType.SUMMARY, {"summary": "a\nb"}, stored, None) == "- a b[2025/03/01]"


def test_token_counts_work_offline() -> None:
    assert count_tokens("") == 0
    assert 0 < count_tokens("hello world") <= 3
    assert count_tokens("<|endoftext|>") > 1
