"""UserService over gRPC against the real server."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

import grpc
import pytest
from google.protobuf import json_format, struct_pb2

from memobase_server.gen.memobase.v1 import blob_pb2, common_pb2, user_pb2
from tests.conftest import Stubs


def _struct(value: dict[str, Any]) -> struct_pb2.Struct:
    s = struct_pb2.Struct()
    s.update(value)
    return s


def _create(stubs: Stubs, **kwargs: Any) -> str:
    reply = stubs.users.CreateUser(
        user_pb2.CreateUserRequest(**kwargs),
        metadata=stubs.metadata,
        timeout=10,
    )
    user_id: str = reply.id
    return user_id


def test_create_with_generated_id_and_read_back(root: Stubs) -> None:
    user_id = _create(root, data=_struct({"name": "Ada", "age": 36}))
    assert uuid.UUID(user_id).version == 4
    got = root.users.GetUser(user_pb2.GetUserRequest(user_id=user_id), metadata=root.metadata)
    assert json_format.MessageToDict(got.data) == {"name": "Ada", "age": 36}
    assert got.id == user_id
    assert got.created_at.seconds > 0
    assert got.updated_at == got.created_at


def test_create_with_given_id_then_duplicate_is_already_exists(root: Stubs) -> None:
    user_id = str(uuid.uuid4())
    assert _create(root, id=user_id) == user_id
    with pytest.raises(grpc.RpcError) as err:
        _create(root, id=user_id)
    assert err.value.code() == grpc.StatusCode.ALREADY_EXISTS
    assert user_id in (err.value.details() or "")


def test_create_rejects_ids_that_are_not_uuid4_or_5(root: Stubs) -> None:
    for bad in ("not-a-uuid", str(uuid.uuid1())):
        with pytest.raises(grpc.RpcError) as err:
            _create(root, id=bad)
        assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT


def test_update_replaces_data_exactly(root: Stubs) -> None:
    user_id = _create(root, data=_struct({"old": True, "keep": "no"}))
    root.users.UpdateUser(
        user_pb2.UpdateUserRequest(user_id=user_id, data=_struct({"new": [1, 2]})),
        metadata=root.metadata,
    )
    got = root.users.GetUser(user_pb2.GetUserRequest(user_id=user_id), metadata=root.metadata)
    assert json_format.MessageToDict(got.data) == {"new": [1, 2]}
    assert got.updated_at.ToDatetime() >= got.created_at.ToDatetime()


def test_unknown_user_is_not_found_for_get_update_delete(root: Stubs) -> None:
    missing = str(uuid.uuid4())
    calls: list[Callable[[], object]] = [
        lambda: root.users.GetUser(
            user_pb2.GetUserRequest(user_id=missing), metadata=root.metadata
        ),
        lambda: root.users.UpdateUser(
            user_pb2.UpdateUserRequest(user_id=missing), metadata=root.metadata
        ),
        lambda: root.users.DeleteUser(
            user_pb2.DeleteUserRequest(user_id=missing), metadata=root.metadata
        ),
    ]
    for call in calls:
        with pytest.raises(grpc.RpcError) as err:
            call()
        assert err.value.code() == grpc.StatusCode.NOT_FOUND
        assert err.value.details() == f"User {missing} not found"


def test_delete_removes_the_user_and_their_blobs(root: Stubs) -> None:
    user_id = _create(root)
    blob = blob_pb2.InsertBlobRequest(
        user_id=user_id,
        blob=common_pb2.BlobInput(
            blob_type=common_pb2.BLOB_TYPE_CHAT,
            blob_data=_struct({"messages": [{"role": "user", "content": "hi"}]}),
        ),
    )
    blob_id = root.blobs.InsertBlob(blob, metadata=root.metadata).id
    root.users.DeleteUser(user_pb2.DeleteUserRequest(user_id=user_id), metadata=root.metadata)

    with pytest.raises(grpc.RpcError) as err:
        root.users.GetUser(user_pb2.GetUserRequest(user_id=user_id), metadata=root.metadata)
    assert err.value.code() == grpc.StatusCode.NOT_FOUND
    with pytest.raises(grpc.RpcError) as err:
        root.blobs.GetBlob(
            blob_pb2.GetBlobRequest(user_id=user_id, blob_id=blob_id), metadata=root.metadata
        )
    assert err.value.code() == grpc.StatusCode.NOT_FOUND
    listed = root.blobs.ListBlobs(
        blob_pb2.ListBlobsRequest(user_id=user_id, blob_type=common_pb2.BLOB_TYPE_CHAT),
        metadata=root.metadata,
    )
    assert list(listed.ids) == []
    # Re-creating the same id starts from nothing.
    assert _create(root, id=user_id) == user_id
    listed = root.blobs.ListBlobs(
        blob_pb2.ListBlobsRequest(user_id=user_id, blob_type=common_pb2.BLOB_TYPE_CHAT),
        metadata=root.metadata,
    )
    assert list(listed.ids) == []


def test_a_deleted_user_takes_no_more_inserts(root: Stubs) -> None:
    user_id = _create(root)
    blob = blob_pb2.InsertBlobRequest(
        user_id=user_id,
        blob=common_pb2.BlobInput(
            blob_type=common_pb2.BLOB_TYPE_CHAT,
            blob_data=_struct({"messages": [{"role": "user", "content": "hi"}]}),
        ),
    )
    root.blobs.InsertBlob(blob, metadata=root.metadata)  # the user is now known to the cache
    root.users.DeleteUser(user_pb2.DeleteUserRequest(user_id=user_id), metadata=root.metadata)
    with pytest.raises(grpc.RpcError) as err:
        root.blobs.InsertBlob(blob, metadata=root.metadata)
    assert err.value.code() == grpc.StatusCode.NOT_FOUND
