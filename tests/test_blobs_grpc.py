"""BlobService (blobs and buffers) over gRPC against the real server."""

from __future__ import annotations

import uuid
from typing import Any

import grpc
import pytest
from google.protobuf import json_format, struct_pb2
from pymongo.database import Database

from memobase_server.domain.tokens import count_tokens
from memobase_server.gen.memobase.v1 import blob_pb2, common_pb2, user_pb2
from tests.conftest import Stubs

CHAT = common_pb2.BLOB_TYPE_CHAT


def _struct(value: dict[str, Any]) -> struct_pb2.Struct:
    s = struct_pb2.Struct()
    s.update(value)
    return s


def _user(stubs: Stubs) -> str:
    user_id: str = stubs.users.CreateUser(user_pb2.CreateUserRequest(), metadata=stubs.metadata).id
    return user_id


def _insert(
    stubs: Stubs,
    user_id: str,
    blob_type: int = CHAT,
    data: dict[str, Any] | None = None,
    **extra: Any,
) -> str:
    payload = data if data is not None else {"messages": [{"role": "user", "content": "hello"}]}
    request = blob_pb2.InsertBlobRequest(
        user_id=user_id,
        blob=common_pb2.BlobInput(blob_type=blob_type, blob_data=_struct(payload)),  # type: ignore[arg-type]
        **extra,
    )
    blob_id: str = stubs.blobs.InsertBlob(request, metadata=stubs.metadata, timeout=10).id
    return blob_id


def _ids(stubs: Stubs, user_id: str, blob_type: int = CHAT, **paging: int) -> list[str]:
    reply = stubs.blobs.ListBlobs(
        blob_pb2.ListBlobsRequest(user_id=user_id, blob_type=blob_type, **paging),  # type: ignore[arg-type]
        metadata=stubs.metadata,
    )
    return list(reply.ids)


def _buffer(stubs: Stubs, user_id: str, status: int) -> list[str]:
    reply = stubs.blobs.GetBufferCapacity(
        blob_pb2.GetBufferCapacityRequest(user_id=user_id, buffer_type=CHAT, status=status),  # type: ignore[arg-type]
        metadata=stubs.metadata,
    )
    return list(reply.ids)


def _code(call: Any) -> grpc.StatusCode:
    with pytest.raises(grpc.RpcError) as err:
        call()
    code: grpc.StatusCode = err.value.code()
    return code


def test_insert_then_get_returns_the_normalised_chat(root: Stubs) -> None:
    user_id = _user(root)
    messages = [
        {
            "role": "user",
            "content": "I moved to Lisbon",
            "alias": "Ana",
            "created_at": "2025-01-02",
            "mood": "dropped",
        },
        {"role": "assistant", "content": "Nice!"},
    ]
    blob_id = _insert(root, user_id, data={"messages": messages})
    got = root.blobs.GetBlob(
        blob_pb2.GetBlobRequest(user_id=user_id, blob_id=blob_id), metadata=root.metadata
    )
    assert got.blob_type == CHAT
    stored = json_format.MessageToDict(got.blob_data)
    assert stored == {
        "messages": [
            {
                "role": "user",
                "content": "I moved to Lisbon",
                "alias": "Ana",
                "created_at": "2025-01-02",
            },
            {"role": "assistant", "content": "Nice!"},
        ]
    }
    assert not got.HasField("fields")


def test_each_chat_becomes_an_idle_buffer_entry_with_its_token_count(root: Stubs) -> None:
    user_id = _user(root)
    first = _insert(root, user_id)
    second = _insert(root, user_id)
    idle = _buffer(root, user_id, common_pb2.BUFFER_STATUS_IDLE)
    assert len(idle) == 2
    assert not {first, second} & set(idle), "buffer entry ids are not blob ids"
    assert _buffer(root, user_id, common_pb2.BUFFER_STATUS_PROCESSING) == []
    assert _buffer(root, user_id, common_pb2.BUFFER_STATUS_DONE) == []


def test_buffer_defaults_to_processing_status(root: Stubs) -> None:
    user_id = _user(root)
    _insert(root, user_id)
    reply = root.blobs.GetBufferCapacity(
        blob_pb2.GetBufferCapacityRequest(user_id=user_id, buffer_type=CHAT),
        metadata=root.metadata,
    )
    assert list(reply.ids) == []


def test_token_count_is_stored_on_the_entry(root: Stubs, database: Database[Any]) -> None:
    user_id = _user(root)
    blob_id = _insert(
        root,
        user_id,
        data={
            "messages": [
                {"role": "user", "content": "one two three four five", "created_at": "today"}
            ]
        },
    )
    doc = database["blobs"].find_one({"blob_id": blob_id})
    assert doc is not None
    assert doc["buffer"]["status"] == "idle"
    assert doc["buffer"]["token_size"] == count_tokens("[today] user: one two three four five")


def test_summary_and_doc_blobs(root: Stubs) -> None:
    user_id = _user(root)
    summary = _insert(root, user_id, common_pb2.BLOB_TYPE_SUMMARY, {"summary": "likes tea"})
    doc = _insert(root, user_id, common_pb2.BLOB_TYPE_DOC, {"content": "a document"})
    assert _ids(root, user_id, common_pb2.BLOB_TYPE_SUMMARY) == [summary]
    assert _ids(root, user_id, common_pb2.BLOB_TYPE_DOC) == [doc]
    assert _ids(root, user_id, CHAT) == []
    summary_idle = root.blobs.GetBufferCapacity(
        blob_pb2.GetBufferCapacityRequest(
            user_id=user_id,
            buffer_type=common_pb2.BLOB_TYPE_SUMMARY,
            status=common_pb2.BUFFER_STATUS_IDLE,
        ),
        metadata=root.metadata,
    )
    assert len(summary_idle.ids) == 1


def test_list_pages_oldest_first(root: Stubs) -> None:
    user_id = _user(root)
    inserted = [_insert(root, user_id) for _ in range(5)]
    assert _ids(root, user_id) == inserted
    assert _ids(root, user_id, page=0, page_size=2) == inserted[:2]
    assert _ids(root, user_id, page=1, page_size=2) == inserted[2:4]
    assert _ids(root, user_id, page=2, page_size=2) == inserted[4:]
    assert _ids(root, user_id, page=3, page_size=2) == []


def test_bad_paging_is_invalid_argument(root: Stubs) -> None:
    user_id = _user(root)
    assert _code(lambda: _ids(root, user_id, page=-1)) == grpc.StatusCode.INVALID_ARGUMENT
    assert _code(lambda: _ids(root, user_id, page_size=0)) == grpc.StatusCode.INVALID_ARGUMENT
    assert _code(lambda: _ids(root, user_id, page_size=-5)) == grpc.StatusCode.INVALID_ARGUMENT


def test_delete_blob_removes_it_and_its_buffer_entry_and_is_idempotent(root: Stubs) -> None:
    user_id = _user(root)
    blob_id = _insert(root, user_id)
    request = blob_pb2.DeleteBlobRequest(user_id=user_id, blob_id=blob_id)
    root.blobs.DeleteBlob(request, metadata=root.metadata)
    root.blobs.DeleteBlob(request, metadata=root.metadata)
    assert _ids(root, user_id) == []
    assert _buffer(root, user_id, common_pb2.BUFFER_STATUS_IDLE) == []
    get = blob_pb2.GetBlobRequest(user_id=user_id, blob_id=blob_id)
    assert (
        _code(lambda: root.blobs.GetBlob(get, metadata=root.metadata)) == grpc.StatusCode.NOT_FOUND
    )


def test_insert_for_unknown_user_is_not_found_and_stores_nothing(root: Stubs) -> None:
    missing = str(uuid.uuid4())
    assert _code(lambda: _insert(root, missing)) == grpc.StatusCode.NOT_FOUND
    assert _ids(root, missing) == []


@pytest.mark.parametrize(
    ("blob_type", "data"),
    [
        (CHAT, {"messages": []}),
        (CHAT, {"messages": [{"role": "system", "content": "x"}]}),
        (CHAT, {"messages": [{"role": "user", "content": 5}]}),
        (CHAT, {"messages": "not a list"}),
        (CHAT, {}),
        (common_pb2.BLOB_TYPE_SUMMARY, {"summary": ["x"]}),
        (common_pb2.BLOB_TYPE_DOC, {}),
        (common_pb2.BLOB_TYPE_IMAGE, {"url": "http://x"}),
        (common_pb2.BLOB_TYPE_CODE, {"content": "print()"}),
        (common_pb2.BLOB_TYPE_TRANSCRIPT, {"transcripts": []}),
        (common_pb2.BLOB_TYPE_UNSPECIFIED, {"content": "x"}),
    ],
)
def test_bad_blobs_are_rejected_and_store_nothing(
    root: Stubs, blob_type: int, data: dict[str, Any]
) -> None:
    user_id = _user(root)
    assert (
        _code(lambda: _insert(root, user_id, blob_type, data)) == grpc.StatusCode.INVALID_ARGUMENT
    )
    for kind in (CHAT, common_pb2.BLOB_TYPE_SUMMARY, common_pb2.BLOB_TYPE_DOC):
        assert _ids(root, user_id, kind) == []


def test_oversized_insert_is_rejected(root: Stubs) -> None:
    user_id = _user(root)
    huge = {"messages": [{"role": "user", "content": "x" * (9 * 2**20)}]}
    assert _code(lambda: _insert(root, user_id, data=huge)) == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert _ids(root, user_id) == []


def test_retried_insert_with_the_same_idempotency_key_stores_one_blob(root: Stubs) -> None:
    user_id = _user(root)
    first = _insert(root, user_id, idempotency_key="req-1")
    again = _insert(root, user_id, idempotency_key="req-1")
    other = _insert(root, user_id, idempotency_key="req-2")
    assert first == again != other
    assert _ids(root, user_id) == [first, other]
    assert len(_buffer(root, user_id, common_pb2.BUFFER_STATUS_IDLE)) == 2


def test_flush_of_an_empty_buffer_returns_no_results(root: Stubs) -> None:
    user_id = _user(root)
    reply = root.blobs.FlushBuffer(
        blob_pb2.FlushBufferRequest(user_id=user_id, buffer_type=CHAT, wait_process=True),
        metadata=root.metadata,
    )
    assert list(reply.chat_results) == []


def test_flush_of_a_type_without_a_processor_is_invalid(root: Stubs) -> None:
    user_id = _user(root)
    request = blob_pb2.FlushBufferRequest(
        user_id=user_id, buffer_type=common_pb2.BLOB_TYPE_DOC, wait_process=True
    )
    with pytest.raises(grpc.RpcError) as err:
        root.blobs.FlushBuffer(request, metadata=root.metadata)
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "not supported" in (err.value.details() or "")
