"""Reading memory back through the SDK: profiles, events, gists, search and context."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

import httpx
import pytest
import redis
from memobase import MemoBaseClient
from memobase.core.entry import User
from memobase.error import ServerError

from memobase_server.gen.memobase.v1 import profile_pb2
from tests.conftest import ScriptedLLM, Stack, Stubs, create_project
from tests.test_pipeline import chat, wait_until


def _raw(stack: Stack, path: str) -> dict[str, Any]:
    reply = httpx.get(
        f"{stack.http_url}{path}",
        headers={"Authorization": f"Bearer {stack.root_token}"},
        timeout=30,
    )
    body: dict[str, Any] = reply.json()
    return body


def _topics(user: User, **kwargs: Any) -> list[tuple[str, str]]:
    return [(p.topic, p.sub_topic) for p in user.profile(**kwargs)]


@pytest.fixture
def user(sdk: MemoBaseClient) -> User:
    return sdk.get_or_create_user(str(uuid.uuid4()))


def test_profile_add_read_update_delete(user: User) -> None:
    first = user.add_profile("Ada", "basic_info", "name")
    second = user.add_profile("London", "contact_info", "city")
    profiles = user.profile()
    assert [str(p.id) for p in profiles] == [second, first]  # newest first
    assert profiles[1].content == "Ada" and profiles[1].describe == "basic_info: name - Ada"

    assert user.update_profile(first, "Ada L.", "basic_info", "full_name") is True
    updated = {str(p.id): p for p in user.profile()}[first]
    assert (updated.content, updated.sub_topic) == ("Ada L.", "full_name")
    assert str(user.profile()[0].id) == first  # updated moves to the front

    assert user.delete_profile(second) is True
    assert [str(p.id) for p in user.profile()] == [first]
    missing = str(uuid.uuid4())
    calls: list[Callable[[], object]] = [
        lambda: user.update_profile(missing, "x", "a", "b"),
        lambda: user.delete_profile(missing),
        lambda: user.delete_profile(second),
    ]
    for call in calls:
        with pytest.raises(ServerError, match="not found"):
            call()


def test_profile_need_json(user: User) -> None:
    slot = user.add_profile("tea", "interest", "foods")
    shaped = user.profile(need_json=True)
    assert str(shaped["interest"]["foods"]["id"]) == slot
    assert shaped["interest"]["foods"]["content"] == "tea"


def test_add_profile_validation(sdk: MemoBaseClient, user: User) -> None:
    with pytest.raises(ServerError, match="topic"):
        user.add_profile("x", "", "name")
    ghost = sdk.get_user(str(uuid.uuid4()), no_get=True)
    with pytest.raises(ServerError, match="not found"):
        ghost.add_profile("x", "a", "b")
    assert ghost.profile() == []


def test_profile_filters(user: User, root: Stubs) -> None:
    for topic, sub in [("work", "title"), ("work", "company"), ("interest", "music"),
                       ("basic_info", "name"), ("interest", "books")]:  # fmt: skip
        user.add_profile(f"{topic} {sub} " + "word " * 5, topic, sub)
    newest_first = [("interest", "books"), ("basic_info", "name"), ("interest", "music"),
                    ("work", "company"), ("work", "title")]  # fmt: skip
    assert _topics(user) == newest_first
    assert _topics(user, prefer_topics=["work", "basic_info"]) == [
        ("work", "company"), ("work", "title"), ("basic_info", "name"),
        ("interest", "books"), ("interest", "music")]  # fmt: skip
    assert _topics(user, only_topics=["interest"]) == [("interest", "books"), ("interest", "music")]
    assert _topics(user, max_subtopic_size=1) == [
        ("interest", "books"), ("basic_info", "name"), ("work", "company")]  # fmt: skip
    capped = _topics(user, max_subtopic_size=1, topic_limits={"work": 2})
    assert capped == [
        ("interest", "books"), ("basic_info", "name"), ("work", "company"), ("work", "title"),
    ]  # fmt: skip
    assert len(_topics(user, max_token_size=20)) == 1  # the first slot is always kept
    assert 1 < len(_topics(user, max_token_size=40)) < 5
    reply = root.profiles.GetProfile(
        profile_pb2.GetProfileRequest(user_id=user.user_id, topk=2), metadata=root.metadata
    )
    assert [(p.attributes.topic, p.attributes.sub_topic) for p in reply.profiles] == newest_first[
        :2
    ]


def test_profile_bad_parameters_are_errno_400(stack: Stack, user: User) -> None:
    base = f"/api/v1/users/profile/{user.user_id}"
    for query in (
        "?topic_limits_json={not json",
        '?topic_limits_json={"work": -1}',
        "?chats_str=[{",
        '?chats_str=[{"role": "system", "content": "x"}]',
        "?max_subtopic_size=0",
        "?topk=-1",
    ):
        body = _raw(stack, base + query)
        assert body["errno"] == 400, query
        assert "Traceback" not in body["errmsg"]


def test_profile_picker_uses_the_chat(user: User, llm: ScriptedLLM) -> None:
    user.add_profile("jazz records", "interest", "music")
    user.add_profile("Acme", "work", "company")
    picked = user.profile(chats=[{"role": "user", "content": "Any jazz concerts this week?"}])
    assert [p.content for p in picked] == ["jazz records"]
    assert llm.stats()["calls"].get("pick_profiles") == 1


def _memory(user: User) -> None:
    user.insert(chat("My name is Ada and I live in London. #emotion=happy"))
    user.insert(chat("I love jazz music and I enjoy long walks."))
    user.flush(sync=True)


def test_events_after_a_flush(user: User, llm: ScriptedLLM) -> None:
    _memory(user)
    [event] = user.event()
    assert "I love jazz music" in (event.event_data.event_tip or "")
    assert {d.attributes["topic"] for d in event.event_data.profile_delta} >= {"basic_info"}
    assert user.event(topk=1, max_token_size=1) == []

    assert user.update_event(str(event.id), {"event_tip": "- likes jazz // info"}) is True
    [again] = user.event()
    assert again.event_data.event_tip == "- likes jazz // info"
    assert again.event_data.profile_delta == event.event_data.profile_delta  # untouched
    wait_until(
        lambda: (
            [g.gist_data.content for g in user.search_event_gist("jazz")]
            == ["- likes jazz // info"]
        )
    )

    assert user.delete_event(str(event.id)) is True
    assert user.event() == []
    with pytest.raises(ServerError, match="not found"):
        user.delete_event(str(event.id))
    wait_until(lambda: user.search_event_gist("jazz") == [])


def test_semantic_search(user: User, llm: ScriptedLLM) -> None:
    _memory(user)
    wait_until(lambda: len(user.search_event_gist("jazz music", similarity_threshold=0.1)) > 0)
    gists = user.search_event_gist("jazz music", similarity_threshold=0.1)
    assert "jazz" in gists[0].gist_data.content
    assert gists[0].similarity is not None and gists[0].similarity > 0.1
    assert user.search_event_gist("quantum chromodynamics", similarity_threshold=0.5) == []
    [event] = user.search_event("jazz music", similarity_threshold=0.1)
    assert event.similarity is not None and event.event_data.event_tip


def test_search_by_tags(user: User, llm: ScriptedLLM) -> None:
    _memory(user)  # the test server's config has event_tags: [emotion, topic]
    [tagged] = user.search_event_by_tags(tags=["emotion"])
    assert [(t.tag, t.value) for t in tagged.event_data.event_tags or []] == [("emotion", "happy")]
    assert user.search_event_by_tags(tag_values={"emotion": "happy"}) == [tagged]
    assert user.search_event_by_tags(tag_values={"emotion": "sad"}) == []
    assert user.search_event_by_tags(tags=['emo"tion', "x' OR 1=1"]) == []


def test_context_prompt(stack: Stack, user: User, llm: ScriptedLLM) -> None:
    _memory(user)
    text = user.context()
    assert text.startswith("---\n# Memory")
    assert "- basic_info::name: Ada" in text
    assert "I love jazz music" in text
    custom = user.context(customize_context_prompt="P={profile_section}|E={event_section}|{x}")
    assert custom.startswith("P=- ") and "|E=- " in custom and custom.endswith("|{x}")
    only_profile = user.context(customize_context_prompt="{profile_section}", max_token_size=5)
    assert only_profile.count("\n") == 0
    searched = user.context(
        chats=[{"role": "user", "content": "what music do I like? jazz"}],
        customize_context_prompt="{event_section}",
        event_similarity_threshold=0.05,
    )
    assert "jazz" in searched
    body = _raw(stack, f"/api/v1/users/context/{user.user_id}?profile_event_ratio=1.5")
    assert body["errno"] == 400


def test_caches_can_be_wiped_without_changing_answers(stack: Stack, user: User) -> None:
    user.add_profile("Ada", "basic_info", "name")
    before = [(str(p.id), p.content) for p in user.profile()]
    events_before = user.event()
    redis.Redis.from_url(stack.redis_url).flushall()
    assert [(str(p.id), p.content) for p in user.profile()] == before
    assert user.event() == events_before
    user.add_profile("London", "contact_info", "city")
    assert len(user.profile()) == 2


def test_deleted_users_leave_nothing_readable(sdk: MemoBaseClient, llm: ScriptedLLM) -> None:
    user = sdk.get_or_create_user(str(uuid.uuid4()))
    _memory(user)
    assert user.profile() and user.event()
    sdk.delete_user(user.user_id)
    ghost = sdk.get_user(user.user_id, no_get=True)
    assert ghost.profile() == [] and ghost.event() == []
    wait_until(lambda: ghost.search_event_gist("jazz", similarity_threshold=0.0) == [])


def test_import_profile_from_text(stack: Stack, user: User, llm: ScriptedLLM) -> None:
    def post(body: dict[str, Any]) -> dict[str, Any]:
        reply = httpx.post(
            f"{stack.http_url}/api/v1/users/profile/import/{user.user_id}",
            json=body,
            headers={"Authorization": f"Bearer {stack.root_token}"},
            timeout=30,
        )
        result: dict[str, Any] = reply.json()
        return result

    assert post({"context": "My name is Zed. I live in Oslo."})["errno"] == 0
    assert {(p.topic, p.sub_topic, p.content) for p in user.profile()} >= {
        ("basic_info", "name", "Zed"),
        ("contact_info", "city", "Oslo"),
    }
    assert post({"context": "   "})["errno"] == 400


def test_roleplay_proactive_topic(stack: Stack, user: User, llm: ScriptedLLM) -> None:
    user.add_profile("jazz", "interest", "music")

    def proactive(text: str) -> dict[str, Any]:
        reply = httpx.post(
            f"{stack.http_url}/api/v1/users/roleplay/proactive/{user.user_id}?topk=3",
            json={"messages": [{"role": "user", "content": text}], "agent_context": "a bard"},
            headers={"Authorization": f"Bearer {stack.root_token}"},
            timeout=30,
        )
        body: dict[str, Any] = reply.json()
        return body

    assert proactive("Tell me more about the dragon")["data"] == {
        "action": "continue",
        "topic_prompt": None,
    }
    fresh = proactive("I am bored, new topic please")["data"]
    assert fresh["action"] == "new_topic"
    assert "- Start with interest::music: jazz" in fresh["topic_prompt"]
    assert fresh["topic_prompt"].endswith("##")
    assert llm.stats()["calls"].get("roleplay_plot") == 1
    empty = httpx.post(
        f"{stack.http_url}/api/v1/users/roleplay/proactive/{user.user_id}",
        json={"messages": []},
        headers={"Authorization": f"Bearer {stack.root_token}"},
        timeout=30,
    ).json()
    assert empty["errno"] == 400


def test_memory_never_crosses_projects(stack: Stack, root: Stubs, llm: ScriptedLLM) -> None:
    a = MemoBaseClient(api_key=create_project(root), project_url=stack.http_url)
    b = MemoBaseClient(api_key=create_project(root), project_url=stack.http_url)
    user_id = str(uuid.uuid4())
    owner = a.get_or_create_user(user_id)
    _memory(owner)
    owner.add_profile("secret", "work", "codename")
    assert owner.profile() and owner.event()
    wait_until(lambda: owner.search_event_gist("jazz", similarity_threshold=0.0) != [])

    intruder = b.get_or_create_user(user_id)  # same id, other project
    assert intruder.profile() == []
    assert intruder.event() == []
    assert intruder.search_event_gist("jazz", similarity_threshold=0.0) == []
    assert intruder.search_event("jazz", similarity_threshold=0.0) == []
    assert intruder.search_event_by_tags(tags=["emotion"]) == []
    assert "Ada" not in intruder.context() and "secret" not in intruder.context()
    slot = str(owner.profile()[0].id)
    with pytest.raises(ServerError):
        intruder.delete_profile(slot)
    with pytest.raises(ServerError):
        intruder.update_profile(slot, "stolen", "work", "codename")
    event_id = str(owner.event()[0].id)
    with pytest.raises(ServerError):
        intruder.delete_event(event_id)
    assert user_id in {u["id"] for u in b.get_all_users()}  # b's own user of that id
    assert all(u["profile_count"] == 0 for u in b.get_all_users())
    assert sum(d["total_input_token"] for d in b.get_daily_usage(1)) == 0
    assert owner.profile()[0].content == "secret"
