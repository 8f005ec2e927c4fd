"""Hostile input through the REST gateway on the default stack: keys MongoDB cannot hold as
field names are stored safely, NUL characters and absurd nesting get a clear 4xx that names
the field, and none of it is ever a 500 or leaves anything half-written."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from memobase import ChatBlob, MemoBaseClient
from pymongo.database import Database

from tests.conftest import Stack


@pytest.fixture
def api(stack: Stack) -> Iterator[httpx.Client]:
    with httpx.Client(
        base_url=f"{stack.http_url}/api/v1",
        headers={"Authorization": f"Bearer {stack.root_token}"},
        timeout=30,
    ) as client:
        yield client


def _chat(content: str) -> dict[str, Any]:
    return {"blob_type": "chat", "blob_data": {"messages": [{"role": "user", "content": content}]}}


def _nested(depth: int) -> str:
    return '{"a":' * depth + "1" + "}" * depth


def test_any_key_in_user_data_and_blob_fields_round_trips(api: httpx.Client) -> None:
    data = {"a.b": 1, "$x": {"c.d": [1, {"$e": None}]}, "nul\x00key": "nul\x00value", "": 2}
    created = api.post("/users", json={"data": data}).json()
    assert created["errno"] == 0
    user_id = created["data"]["id"]
    assert api.get(f"/users/{user_id}").json()["data"]["data"] == data

    updated = {"x.y": {"$z": "ok"}}
    assert api.put(f"/users/{user_id}", json={"data": updated}).json()["errno"] == 0
    assert api.get(f"/users/{user_id}").json()["data"]["data"] == updated

    fields = {"source.app": "web", "$ref": 1}
    inserted = api.post(f"/blobs/insert/{user_id}", json={**_chat("hi"), "fields": fields})
    blob_id = inserted.json()["data"]["id"]
    assert api.get(f"/blobs/{user_id}/{blob_id}").json()["data"]["fields"] == fields


@pytest.mark.parametrize(
    ("path", "body", "errno", "names"),
    [
        ("/blobs/insert/{user}", _chat("hi\x00there"), 400, "messages[0].content"),
        (
            "/users/profile/{user}",
            {"content": "x\x00y", "attributes": {"topic": "t", "sub_topic": "s"}},
            400,
            "content",
        ),
        (
            "/users/profile/{user}",
            {"content": "xy", "attributes": {"topic": "t\x00", "sub_topic": "s"}},
            400,
            "topic",
        ),
    ],
    ids=["chat-content", "profile-content", "profile-topic"],
)
def test_nul_characters_are_refused_by_name(
    api: httpx.Client,
    database: Database[dict[str, Any]],
    path: str,
    body: dict[str, Any],
    errno: int,
    names: str,
) -> None:
    user_id = api.post("/users", json={}).json()["data"]["id"]
    reply = api.post(path.format(user=user_id), json=body)
    assert reply.status_code == 200  # upstream's envelope: the error is in errno
    envelope = reply.json()
    assert envelope["errno"] == errno
    assert names in envelope["errmsg"] and "NUL" in envelope["errmsg"]
    assert database["blobs"].count_documents({"user_id": user_id}) == 0
    assert database["profiles"].count_documents({"user_id": user_id}) == 0


def test_nul_in_an_event_edit_is_refused_and_the_event_kept(
    api: httpx.Client, sdk: MemoBaseClient, database: Database[dict[str, Any]]
) -> None:
    user = sdk.get_or_create_user(str(uuid.uuid4()))
    user.insert(ChatBlob(messages=[{"role": "user", "content": "I moved to Oslo."}]))
    user.flush(sync=True)
    [event] = database["events"].find({"user_id": user.user_id})
    reply = api.put(
        f"/users/event/{user.user_id}/{event['event_id']}", json={"event_tip": "bad\x00tip"}
    ).json()
    assert reply["errno"] == 400 and "NUL" in reply["errmsg"]
    [kept] = database["events"].find({"user_id": user.user_id})
    assert kept["event_tip"] == event["event_tip"]


@pytest.mark.parametrize("param", ["chats_str", "topic_limits_json"])
def test_deeply_nested_query_json_is_refused_by_name(api: httpx.Client, param: str) -> None:
    user_id = api.post("/users", json={}).json()["data"]["id"]
    value = "[" * 1500 + "]" * 1500 if param == "chats_str" else _nested(1500)
    reply = api.get(f"/users/context/{user_id}", params={param: value}).json()
    assert reply["errno"] == 400
    assert param in reply["errmsg"] and "nested too deeply" in reply["errmsg"]


def test_deeply_nested_bodies_are_refused(api: httpx.Client) -> None:
    for body in ('{"data":' + _nested(200) + "}", '{"data":' + _nested(100_000) + "}"):
        reply = api.post("/users", content=body, headers={"content-type": "application/json"})
        assert reply.status_code == 422 and reply.json()["errno"] == 422
