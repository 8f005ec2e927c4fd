"""The official memobase SDK (pinned in pyproject.toml) against the REST gateway: every user,
blob and buffer method."""

from __future__ import annotations

import uuid
from typing import Any

import httpx
import pytest
from memobase import AsyncMemoBaseClient, ChatBlob, MemoBaseClient
from memobase.core.blob import BlobType, DocBlob, SummaryBlob
from memobase.error import ServerError

from tests.conftest import Stack


def test_ping(sdk: MemoBaseClient) -> None:
    assert sdk.ping() is True


def test_user_lifecycle(sdk: MemoBaseClient) -> None:
    user_id = sdk.add_user({"name": "Ada"})
    assert uuid.UUID(user_id).version == 4
    assert sdk.get_user(user_id).fields is not None
    assert sdk.get_user(user_id).fields["data"] == {"name": "Ada"}

    assert sdk.update_user(user_id, {"name": "Grace", "langs": ["en"]}) == user_id
    assert sdk.get_user(user_id).fields["data"] == {"name": "Grace", "langs": ["en"]}

    assert sdk.delete_user(user_id) is True
    with pytest.raises(ServerError, match="not found"):
        sdk.get_user(user_id)
    with pytest.raises(ServerError):
        sdk.delete_user(user_id)


def test_add_user_with_id_and_duplicate(sdk: MemoBaseClient) -> None:
    user_id = str(uuid.uuid4())
    assert sdk.add_user(id=user_id) == user_id
    with pytest.raises(ServerError, match="already exists"):
        sdk.add_user(id=user_id)


def test_get_or_create_user(sdk: MemoBaseClient) -> None:
    user_id = str(uuid.uuid4())
    user = sdk.get_or_create_user(user_id)
    assert user.user_id == user_id
    again = sdk.get_or_create_user(user_id)
    assert again.fields is not None and again.fields["id"] == user_id


def test_blob_methods(sdk: MemoBaseClient) -> None:
    user = sdk.get_or_create_user(str(uuid.uuid4()))
    chat = ChatBlob(
        messages=[
            {"role": "user", "content": "I'm Ada, I love tea", "alias": "Ada"},
            {"role": "assistant", "content": "Noted", "created_at": "2025-01-01"},
        ],
        fields={"source": "test"},
    )
    blob_id = user.insert(chat)
    again = user.get(blob_id)
    assert isinstance(again, ChatBlob)
    assert [m.content for m in again.messages] == ["I'm Ada, I love tea", "Noted"]
    assert again.messages[0].alias == "Ada"
    assert again.messages[1].created_at == "2025-01-01"
    assert again.fields == {"source": "test"}

    summary_id = user.insert(SummaryBlob(summary="Likes green tea"))
    assert isinstance(user.get(summary_id), SummaryBlob)
    doc_id = user.insert(DocBlob(content="notes"))
    assert isinstance(user.get(doc_id), DocBlob)

    second = user.insert(chat, sync=True)
    assert user.get_all(BlobType.chat) == [blob_id, second]
    assert user.get_all(BlobType.chat, page=1, page_size=1) == [second]
    assert user.get_all(BlobType.summary) == [summary_id]

    assert len(user.buffer(BlobType.chat)) == 2  # SDK default status: idle
    assert user.buffer(BlobType.chat, status="processing") == []
    assert len(user.buffer(BlobType.summary)) == 1
    assert user.buffer(BlobType.doc) == []

    assert user.delete(blob_id) is True
    assert user.delete(blob_id) is True
    assert user.get_all(BlobType.chat) == [second]
    with pytest.raises(ServerError, match="not found"):
        user.get(blob_id)


def test_flush_sync_and_async(sdk: MemoBaseClient) -> None:
    user = sdk.get_or_create_user(str(uuid.uuid4()))
    assert user.flush() is True
    assert user.flush(sync=True) is True
    assert user.flush(BlobType.summary, sync=True) is True


def test_insert_for_unknown_user_is_a_clean_404_errno(sdk: MemoBaseClient) -> None:
    user = sdk.get_user(str(uuid.uuid4()), no_get=True)
    with pytest.raises(ServerError, match="not found"):
        user.insert(ChatBlob(messages=[{"role": "user", "content": "hi"}]))


async def test_async_client(stack: Stack) -> None:
    client = AsyncMemoBaseClient(api_key=stack.root_token, project_url=stack.http_url)
    assert await client.ping()
    user_id = await client.add_user({"k": "v"})
    user = await client.get_user(user_id)
    blob_id = await user.insert(ChatBlob(messages=[{"role": "user", "content": "hi"}]))
    assert await user.get_all(BlobType.chat) == [blob_id]
    assert len(await user.buffer(BlobType.chat)) == 1
    assert await client.delete_user(user_id)


def _raw(stack: Stack, method: str, path: str, **kwargs: Any) -> httpx.Response:
    headers = kwargs.pop("headers", {"Authorization": f"Bearer {stack.root_token}"})
    with httpx.Client(base_url=stack.http_url, timeout=30) as client:
        return client.request(method, path, headers=headers, **kwargs)


def test_update_user_accepts_a_bare_object_too(stack: Stack, sdk: MemoBaseClient) -> None:
    user_id = sdk.add_user({"a": 1})
    reply = _raw(stack, "PUT", f"/api/v1/users/{user_id}", json={"plan": "pro", "data": 1})
    assert reply.json() == {"data": {"id": user_id}, "errno": 0, "errmsg": ""}
    assert sdk.get_user(user_id).fields["data"] == {"plan": "pro", "data": 1}


def test_get_user_shape(stack: Stack, sdk: MemoBaseClient) -> None:
    user_id = sdk.add_user({"a": 1})
    body = _raw(stack, "GET", f"/api/v1/users/{user_id}").json()
    assert body["errno"] == 0 and body["errmsg"] == ""
    assert set(body["data"]) == {"data", "id", "created_at", "updated_at"}
    assert body["data"]["data"] == {"a": 1}
    assert body["data"]["created_at"].endswith("Z")


def test_envelope_errors_over_http(stack: Stack) -> None:
    no_auth = _raw(stack, "GET", f"/api/v1/users/{uuid.uuid4()}", headers={})
    assert no_auth.status_code == 401 and no_auth.json()["errno"] == 401
    bad_auth = _raw(
        stack, "GET", f"/api/v1/users/{uuid.uuid4()}", headers={"Authorization": "Bearer nope"}
    )
    assert bad_auth.status_code == 401 and bad_auth.json()["data"] is None

    missing = _raw(stack, "GET", f"/api/v1/users/{uuid.uuid4()}")
    assert missing.status_code == 200 and missing.json()["errno"] == 404

    malformed = _raw(
        stack,
        "POST",
        "/api/v1/users",
        content=b"{not json",
        headers={"Authorization": f"Bearer {stack.root_token}", "Content-Type": "application/json"},
    )
    assert malformed.status_code == 422
    assert malformed.json()["errno"] == 422 and malformed.json()["data"] is None

    wrong_type = _raw(stack, "POST", "/api/v1/users", json={"data": "text", "id": None})
    assert wrong_type.status_code == 422 and wrong_type.json()["errno"] == 422

    bad_uuid = _raw(stack, "GET", "/api/v1/users/not-a-uuid")
    assert bad_uuid.status_code == 422 and bad_uuid.json()["errno"] == 422

    unknown_route = _raw(stack, "GET", "/api/v1/nowhere")
    assert unknown_route.status_code == 404 and unknown_route.json()["errno"] == 404

    negative_page = _raw(stack, "GET", f"/api/v1/users/blobs/{uuid.uuid4()}/chat?page=-1")
    assert negative_page.status_code == 200 and negative_page.json()["errno"] == 400

    bad_type = _raw(stack, "GET", f"/api/v1/users/blobs/{uuid.uuid4()}/video")
    assert bad_type.status_code == 422

    for body in (malformed, wrong_type, bad_uuid, negative_page):
        text = body.text
        assert "Traceback" not in text and "pymongo" not in text and "Error(" not in text


def test_oversized_body_is_413_with_envelope(stack: Stack, sdk: MemoBaseClient) -> None:
    user_id = sdk.add_user()
    blob = {
        "blob_type": "chat",
        "blob_data": {"messages": [{"role": "user", "content": "x" * (9 * 2**20)}]},
    }
    reply = _raw(stack, "POST", f"/api/v1/blobs/insert/{user_id}", json=blob)
    assert reply.status_code == 413 and reply.json()["errno"] == 413
    assert sdk.get_user(user_id, no_get=True).get_all(BlobType.chat) == []


def test_query_quirks_the_sdk_sends(stack: Stack, sdk: MemoBaseClient) -> None:
    user_id = sdk.add_user()
    blob = {"blob_type": "chat", "blob_data": {"messages": [{"role": "user", "content": "a"}]}}
    ok = _raw(stack, "POST", f"/api/v1/blobs/insert/{user_id}?wait_process=False", json=blob)
    assert ok.json()["errno"] == 0 and ok.json()["data"]["chat_results"] == []
    ids = _raw(stack, "GET", f"/api/v1/users/buffer/capacity/{user_id}/chat?status=idle&&page=0")
    assert len(ids.json()["data"]["ids"]) == 1
    bad_bool = _raw(stack, "POST", f"/api/v1/blobs/insert/{user_id}?wait_process=maybe", json=blob)
    assert bad_bool.status_code == 422


def test_idempotent_insert_over_rest(stack: Stack, sdk: MemoBaseClient) -> None:
    user_id = sdk.add_user()
    blob = {"blob_type": "chat", "blob_data": {"messages": [{"role": "user", "content": "a"}]}}
    path = f"/api/v1/blobs/insert/{user_id}?idempotency_key=abc"
    first = _raw(stack, "POST", path, json=blob).json()["data"]["id"]
    second = _raw(stack, "POST", path, json=blob).json()["data"]["id"]
    assert first == second
    assert sdk.get_user(user_id, no_get=True).get_all(BlobType.chat) == [first]
