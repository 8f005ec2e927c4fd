"""No request path reads more than one user's documents: every MongoDB query the memory loop
sends selects by `_id`, `user_id` or `due`. The server counts any other query in
`memobase_unkeyed_queries_total`; these tests check that the audit catches a scan, and that the
whole loop (insert, flush, every read, edits, deletes) sends none."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import pytest
from memobase import ChatBlob, MemoBaseClient

from memobase_server.storage.mongo.database import MongoDatabase
from memobase_server.storage.mongo.query_audit import QueryAudit, allow_scan, is_keyed
from tests.conftest import ScriptedLLM, Stack
from tests.test_metrics import scrape

UNKEYED = "memobase_unkeyed_queries_total"


@pytest.mark.parametrize(
    ("selector", "keyed"),
    [
        ({"_id": "p:u"}, True),
        ({"_id": {"$eq": "p:u"}}, True),
        ({"project_id": "p", "user_id": "u", "state": {"$in": ["a"]}}, True),
        ({"due": "buffer", "$or": [{"a": 1}, {"b": 2}]}, True),
        ({"_id": {"$in": ["p:u:1", "p:u:2"]}}, False),
        ({"project_id": "p"}, False),
        ({"buffer.flush_id": "f"}, False),
        ({"user_id": {"$in": ["u", "v"]}}, False),
        ({"user_id": {"$ne": "u"}}, False),
        ({}, False),
        (None, False),
    ],
)
def test_a_query_is_keyed_only_by_an_equality_on_id_user_or_due(
    selector: dict[str, Any] | None, keyed: bool
) -> None:
    assert is_keyed(selector) is keyed


class _Recorder:
    def __init__(self) -> None:
        self.unkeyed: list[tuple[str, str]] = []

    def unkeyed_query(self, collection: str, command: str) -> None:
        self.unkeyed.append((collection, command))


def test_the_audit_counts_scans_sent_to_the_server(mongo_url: str) -> None:
    recorder = _Recorder()

    async def run() -> None:
        db = MongoDatabase(
            mongo_url, f"audit_{uuid.uuid4().hex[:8]}", listeners=[QueryAudit(recorder)]
        )
        things = db.collection("things")
        try:
            await things.insert_one({"_id": "p:u:1", "project_id": "p", "user_id": "u", "n": 1})
            await things.find_one({"_id": "p:u:1"})
            await things.update_many({"project_id": "p", "user_id": "u"}, {"$set": {"n": 2}})
            assert recorder.unkeyed == []
            await things.find_one({"n": 2})
            await things.delete_many({"_id": {"$in": ["p:u:1"]}})
            with allow_scan("a listing"):
                await things.find({"project_id": "p"}).to_list()
        finally:
            await db.close()

    asyncio.run(run())
    assert recorder.unkeyed == [("things", "find"), ("things", "delete")]


def _unkeyed_total(stack: Stack) -> float:
    return sum(count for (name, _labels), count in scrape(stack).items() if name == UNKEYED)


def test_the_memory_loop_sends_no_unkeyed_query(
    stack: Stack, sdk: MemoBaseClient, llm: ScriptedLLM
) -> None:
    before = _unkeyed_total(stack)
    user = sdk.get_user(sdk.add_user({"name": "Ada"}))
    sdk.update_user(user.user_id, {"name": "Ada L."})
    blob_id = user.insert(
        ChatBlob(messages=[{"role": "user", "content": "I live in Lisbon and I love green tea."}])
    )
    user.get(blob_id)
    user.get_all("chat")
    user.buffer("chat")
    user.buffer("chat", "processing")
    assert user.flush(sync=True)
    user.insert(ChatBlob(messages=[{"role": "user", "content": "I work at a bakery."}]))
    user.flush(sync=False)
    user.flush(sync=True)

    [profile, *_] = user.profile()
    user.update_profile(profile.id, "Porto", profile.topic, profile.sub_topic)
    user.add_profile("Ada", "basic_info", "nickname")
    user.profile(max_token_size=500, prefer_topics=["basic_info"], only_topics=["basic_info"])
    user.context()
    user.context(max_token_size=500, chats=[{"role": "user", "content": "Where do I live?"}])
    events = user.event(topk=10)
    user.search_event("tea", topk=5)
    user.search_event_gist("bakery", topk=5)
    user.search_event_by_tags(tags=["emotion"], topk=5)
    user.update_event(events[0].id, {"event_tip": "Moved to Porto"})
    user.delete_profile(profile.id)
    user.delete_event(events[-1].id)
    user.delete(blob_id)
    sdk.delete_user(user.user_id)

    assert _unkeyed_total(stack) == before
