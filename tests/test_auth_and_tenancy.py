"""Tokens, project keys and tenant isolation."""

from __future__ import annotations

import uuid

import grpc
import httpx
import pytest
from memobase import ChatBlob, MemoBaseClient
from memobase.core.blob import BlobType
from memobase.error import ServerError

from memobase_server.gen.memobase.v1 import project_pb2, user_pb2
from tests.conftest import Stack, Stubs, create_project


def test_grpc_calls_need_a_token(channel: grpc.Channel, root: Stubs) -> None:
    stubs = Stubs(channel, "wrong")
    for metadata in ((), (("authorization", "Bearer wrong"),), (("authorization", "wrong"),)):
        with pytest.raises(grpc.RpcError) as err:
            stubs.users.GetUser(
                user_pb2.GetUserRequest(user_id=str(uuid.uuid4())), metadata=metadata
            )
        assert err.value.code() == grpc.StatusCode.UNAUTHENTICATED


def test_project_keys_only_manage_with_root(root: Stubs, project: Stubs) -> None:
    with pytest.raises(grpc.RpcError) as err:
        project.projects.CreateProject(
            project_pb2.CreateProjectRequest(), metadata=project.metadata
        )
    assert err.value.code() == grpc.StatusCode.PERMISSION_DENIED
    listed = root.projects.ListProjects(project_pb2.ListProjectsRequest(), metadata=root.metadata)
    assert project.token.split("-")[1] in {p.project_id for p in listed.projects}


def test_two_projects_never_see_each_other(stack: Stack, root: Stubs) -> None:
    key_a, key_b = create_project(root), create_project(root)
    a = MemoBaseClient(api_key=key_a, project_url=stack.http_url)
    b = MemoBaseClient(api_key=key_b, project_url=stack.http_url)
    user_id = a.add_user({"owner": "a"})
    blob_id = a.get_user(user_id).insert(
        ChatBlob(messages=[{"role": "user", "content": "secret of a"}])
    )
    # b cannot read, change, list or delete a's user and blob...
    with pytest.raises(ServerError):
        b.get_user(user_id)
    with pytest.raises(ServerError):
        b.update_user(user_id, {"owner": "b"})
    with pytest.raises(ServerError):
        b.delete_user(user_id)
    b_view = b.get_user(user_id, no_get=True)
    with pytest.raises(ServerError):
        b_view.get(blob_id)
    assert b_view.get_all(BlobType.chat) == []
    assert b_view.buffer(BlobType.chat) == []
    b_view.delete(blob_id)  # succeeds as a no-op, like deleting any absent blob
    with pytest.raises(ServerError):
        b_view.insert(ChatBlob(messages=[{"role": "user", "content": "x"}]))
    # ...and may even own a user with the same id, separately.
    assert b.add_user({"owner": "b"}, id=user_id) == user_id
    assert a.get_user(user_id).fields["data"] == {"owner": "a"}
    assert a.get_user(user_id).get(blob_id) is not None
    assert b.get_user(user_id).fields["data"] == {"owner": "b"}
    # root is a project of its own, too.
    with pytest.raises(ServerError):
        MemoBaseClient(api_key=stack.root_token, project_url=stack.http_url).get_user(user_id)


def test_rotate_and_revoke_keys(stack: Stack, root: Stubs, channel: grpc.Channel) -> None:
    created = root.projects.CreateProject(
        project_pb2.CreateProjectRequest(project_id=f"team_{uuid.uuid4().hex[:6]}"),
        metadata=root.metadata,
    )
    old = Stubs(channel, created.secret_key)
    user_id = old.users.CreateUser(user_pb2.CreateUserRequest(), metadata=old.metadata).id
    rotated = root.projects.RotateProjectKey(
        project_pb2.RotateProjectKeyRequest(project_id=created.project_id), metadata=root.metadata
    )
    with pytest.raises(grpc.RpcError) as err:
        old.users.GetUser(user_pb2.GetUserRequest(user_id=user_id), metadata=old.metadata)
    assert err.value.code() == grpc.StatusCode.UNAUTHENTICATED
    new = Stubs(channel, rotated.secret_key)
    assert new.users.GetUser(user_pb2.GetUserRequest(user_id=user_id), metadata=new.metadata).id

    root.projects.RevokeProjectKey(
        project_pb2.RevokeProjectKeyRequest(project_id=created.project_id), metadata=root.metadata
    )
    with pytest.raises(grpc.RpcError) as err:
        new.users.GetUser(user_pb2.GetUserRequest(user_id=user_id), metadata=new.metadata)
    assert err.value.code() == grpc.StatusCode.UNAUTHENTICATED
    reply = httpx.get(
        f"{stack.http_url}/api/v1/users/{user_id}",
        headers={"Authorization": f"Bearer {rotated.secret_key}"},
    )
    assert reply.status_code == 401


def test_a_forged_key_for_a_real_project_is_refused(root: Stubs, channel: grpc.Channel) -> None:
    key = create_project(root)
    forged = key[: key.rindex("-") + 1] + "0" * 48
    stubs = Stubs(channel, forged)
    with pytest.raises(grpc.RpcError) as err:
        stubs.users.CreateUser(user_pb2.CreateUserRequest(), metadata=stubs.metadata)
    assert err.value.code() == grpc.StatusCode.UNAUTHENTICATED
