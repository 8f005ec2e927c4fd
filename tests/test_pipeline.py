"""The memory pipeline end to end: chats in through the SDK, memory out in MongoDB, with the
scripted model behind the server."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import pytest
import redis
from memobase import ChatBlob, MemoBaseClient
from memobase.core.blob import BlobType
from memobase.error import ServerError
from pymongo.database import Database

from tests.conftest import ScriptedLLM, Stack


def chat(*lines: str) -> ChatBlob:
    messages: list[Any] = []
    for line in lines:
        messages.append({"role": "user", "content": line})
        messages.append({"role": "assistant", "content": "Noted."})
    return ChatBlob(messages=messages)


def wait_until(check: Callable[[], bool], timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.1)
    raise AssertionError("condition not reached in time")


def slots(database: Database[Any], user_id: str) -> dict[tuple[str, str], dict[str, Any]]:
    doc = database["profiles"].find_one({"user_id": user_id})
    return {(s["topic"], s["sub_topic"]): s for s in (doc or {}).get("slots", [])}


def events(database: Database[Any], user_id: str) -> list[dict[str, Any]]:
    return list(database["events"].find({"user_id": user_id}).sort("created_at", 1))


def gists(database: Database[Any], user_id: str) -> list[dict[str, Any]]:
    return list(database["event_gists"].find({"user_id": user_id}))


def test_sync_flush_builds_profile_event_and_gists(
    sdk: MemoBaseClient, database: Database[Any], llm: ScriptedLLM
) -> None:
    user = sdk.get_or_create_user(str(uuid.uuid4()))
    user.insert(chat("My name is Ada Lovelace and I live in London."))
    user.insert(chat("I love green tea.", "I work at Analytical Engines Ltd."))
    assert len(user.buffer(BlobType.chat)) == 2
    assert user.flush(sync=True) is True

    profile = slots(database, user.user_id)
    assert profile[("basic_info", "name")]["content"] == "Ada Lovelace"
    assert profile[("contact_info", "city")]["content"] == "London"
    assert profile[("interest", "foods")]["content"] == "green tea"
    assert profile[("work", "company")]["content"] == "Analytical Engines Ltd"

    [event] = events(database, user.user_id)
    tip = event["event_tip"]
    assert "My name is Ada Lovelace and I live in London." in tip
    assert "I love green tea." in tip
    assert {(d["topic"], d["sub_topic"]) for d in event["profile_delta"]} == set(profile)
    stored_gists = gists(database, user.user_id)
    assert sorted(g["content"] for g in stored_gists) == sorted(tip.splitlines())
    # Vectors live apart from the gists' text, under the same key, so reads never load them.
    assert all("vector" not in g for g in stored_gists)
    # One document holds the event's vectors, by gist id: one write per flush.
    [vectors] = database["gist_vectors"].find({"user_id": user.user_id})
    assert vectors["event_id"] == event["event_id"]
    assert {g["gist_id"] for g in stored_gists} == set(vectors["vectors"])
    assert all(len(v) == 256 * 4 for v in vectors["vectors"].values())  # float32 bytes

    # Processed chats are gone (persistent_chat_blobs is off), and nothing waits.
    assert user.get_all(BlobType.chat) == []
    assert user.buffer(BlobType.chat) == []
    stats = llm.stats()
    assert stats["calls"].get("extract") == 1
    assert stats["calls"].get("merge") == 1  # validate mode: new slots are checked in one call


def test_a_second_flush_updates_slots_and_records_the_delta(
    sdk: MemoBaseClient, database: Database[Any], llm: ScriptedLLM
) -> None:
    user = sdk.get_or_create_user(str(uuid.uuid4()))
    user.insert(chat("My name is Ada."))
    user.flush(sync=True)
    first = slots(database, user.user_id)[("basic_info", "name")]
    user.insert(chat("My name is Ada King."))
    user.flush(sync=True)
    second = slots(database, user.user_id)[("basic_info", "name")]
    assert second["id"] == first["id"]
    assert second["content"] == "Ada King"
    assert second["update_hits"] == 1
    latest = events(database, user.user_id)[-1]
    assert latest["profile_delta"] == [
        {"content": "Ada King", "topic": "basic_info", "sub_topic": "name"}
    ]


def test_background_flush_is_run_by_the_worker(
    sdk: MemoBaseClient, database: Database[Any], llm: ScriptedLLM
) -> None:
    user = sdk.get_or_create_user(str(uuid.uuid4()))
    user.insert(chat("I live in Paris."))
    assert user.flush(sync=False) is True
    wait_until(lambda: ("contact_info", "city") in slots(database, user.user_id))
    wait_until(lambda: user.get_all(BlobType.chat) == [])


def test_buffer_past_the_size_threshold_flushes_by_itself(
    sdk: MemoBaseClient, database: Database[Any], llm: ScriptedLLM
) -> None:
    user = sdk.get_or_create_user(str(uuid.uuid4()))
    user.insert(chat("I moved to Berlin."))
    filler = " ".join(["Also some long story about my day"] * 160)
    user.insert(chat(filler))
    wait_until(lambda: ("contact_info", "city") in slots(database, user.user_id))
    assert len(events(database, user.user_id)) == 1


def test_a_burst_of_chats_past_the_size_makes_one_flush(
    sdk: MemoBaseClient, database: Database[Any], llm: ScriptedLLM
) -> None:
    """The size is passed at the third chat; the flush waits for the inserts to pause, so the
    chats that follow at once are in the same batch (one round of model calls), and the jobs
    the later chats queued find the buffer emptied and skip."""
    user = sdk.get_or_create_user(str(uuid.uuid4()))
    filler = " ".join(["Also some long story about my day"] * 60)
    user.insert(chat("I moved to Berlin."))
    for _ in range(6):
        user.insert(chat(filler))
    wait_until(lambda: user.get_all(BlobType.chat) == [] and user.buffer(BlobType.chat) == [])
    [record] = database["flushes"].find({"user_id": user.user_id})
    assert len(record["blob_ids"]) == 7
    assert record["state"] == "committed"
    assert llm.stats()["calls"].get("extract") == 1


def test_sync_insert_past_the_threshold_returns_the_flush_results(
    stack: Stack, sdk: MemoBaseClient, database: Database[Any], llm: ScriptedLLM
) -> None:
    user_id = sdk.add_user()
    filler = " ".join(["My name is Grace and this is a long story"] * 120)
    body = {"blob_type": "chat", "blob_data": {"messages": [{"role": "user", "content": filler}]}}
    reply = httpx.post(
        f"{stack.http_url}/api/v1/blobs/insert/{user_id}?wait_process=true",
        json=body,
        headers={"Authorization": f"Bearer {stack.root_token}"},
        timeout=30,
    ).json()
    assert reply["errno"] == 0
    [result] = reply["data"]["chat_results"]
    assert result["event_id"] == events(database, user_id)[0]["event_id"]
    assert result["add_profiles"] == [slots(database, user_id)[("basic_info", "name")]["id"]]
    assert result["update_profiles"] == [] and result["delete_profiles"] == []


def test_llm_outage_marks_chats_failed_and_a_later_flush_applies_them(
    sdk: MemoBaseClient, database: Database[Any], llm: ScriptedLLM
) -> None:
    user = sdk.get_or_create_user(str(uuid.uuid4()))
    user.insert(chat("My name is Linus."))
    llm.faults(mode="http_500", count=-1)
    with pytest.raises(ServerError, match="LLM"):
        user.flush(sync=True)
    assert len(user.buffer(BlobType.chat, status="failed")) == 1
    assert len(user.get_all(BlobType.chat)) == 1, "the chat is kept"
    assert slots(database, user.user_id) == {} and events(database, user.user_id) == []
    failed = database["blobs"].find_one({"user_id": user.user_id})
    assert failed is not None and "HTTP 500" in failed["buffer"]["error"]

    llm.reset()
    user.flush(sync=True)
    assert user.buffer(BlobType.chat, status="failed") == []
    assert slots(database, user.user_id)[("basic_info", "name")]["content"] == "Linus"
    assert len(events(database, user.user_id)) == 1


def test_garbage_output_is_retried(
    sdk: MemoBaseClient, database: Database[Any], llm: ScriptedLLM
) -> None:
    user = sdk.get_or_create_user(str(uuid.uuid4()))
    user.insert(chat("I live in Oslo."))
    llm.faults(mode="malformed_json", count=1)
    user.flush(sync=True)
    assert slots(database, user.user_id)[("contact_info", "city")]["content"] == "Oslo"
    llm.faults(mode="schema_violation", count=-1, steps=["extract"])
    user.insert(chat("I live in Rome."))
    with pytest.raises(ServerError):
        user.flush(sync=True)
    assert slots(database, user.user_id)[("contact_info", "city")]["content"] == "Oslo"


def test_concurrent_flushes_apply_each_chat_once(
    sdk: MemoBaseClient, database: Database[Any], llm: ScriptedLLM
) -> None:
    user = sdk.get_or_create_user(str(uuid.uuid4()))
    for i in range(5):
        user.insert(chat(f"I am {20 + i} years old."))
    llm.faults(mode="none", latency_ms=300)
    with ThreadPoolExecutor(4) as pool:
        outcomes = list(pool.map(lambda _: user.flush(sync=True), range(4)))
    assert outcomes == [True] * 4
    assert len(events(database, user.user_id)) == 1
    assert database["flushes"].count_documents({"user_id": user.user_id, "state": "committed"}) == 1
    assert user.get_all(BlobType.chat) == []


def test_flushing_a_type_without_a_processor_is_rejected(sdk: MemoBaseClient) -> None:
    user = sdk.get_or_create_user(str(uuid.uuid4()))
    with pytest.raises(ServerError, match="not supported"):
        user.flush(BlobType.doc, sync=True)


def test_tokens_are_recorded_per_step(
    stack: Stack, database: Database[Any], llm: ScriptedLLM, project_key: str
) -> None:
    """The extract tokens a project's usage records are the ones the model counted. A project
    of its own keeps other tests' usage apart; the model's counters are global, so a window in
    which a background retry of another test's chats also called it is measured again."""
    project_id = project_key.removeprefix("sk-").rsplit("-", 1)[0]
    client = MemoBaseClient(project_url=stack.http_url, api_key=project_key)

    def extract_tokens() -> int:
        docs = database["usage"].find({"project_id": project_id})
        return sum(d.get("steps", {}).get("extract", {}).get("input_tokens", 0) for d in docs)

    for _ in range(5):
        before = extract_tokens()
        llm.reset()
        user = client.get_or_create_user(str(uuid.uuid4()))
        user.insert(chat("My name is Tim."))
        user.flush(sync=True)
        stats = llm.stats()
        if stats["calls"].get("extract") == 1:
            spent = stats["prompt_tokens"]["extract"]
            assert extract_tokens() - before == spent > 0
            return
        time.sleep(2)
    pytest.fail("the model was never called by this flush alone")


def test_background_flushes_survive_a_redis_wipe(
    stack: Stack, sdk: MemoBaseClient, database: Database[Any], llm: ScriptedLLM
) -> None:
    redis.Redis.from_url(stack.redis_url).flushall()  # the stream and its group are gone
    user = sdk.get_or_create_user(str(uuid.uuid4()))
    user.insert(chat("I live in Lima."))
    assert user.flush(sync=False) is True
    wait_until(lambda: ("contact_info", "city") in slots(database, user.user_id))
