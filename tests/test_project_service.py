"""ProjectService: profile config, users listing, daily usage and billing, through the SDK, raw
HTTP and gRPC against the real server; the usage recorder and reports with in-memory stores."""

from __future__ import annotations

import asyncio
import pathlib
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from datetime import UTC, date, datetime, timedelta
from typing import Any

import grpc
import httpx
import pytest
from google.protobuf import json_format
from memobase import ChatBlob, MemoBaseClient
from memobase.error import ServerError
from pymongo.database import Database

from memobase_server.gen.memobase.v1 import project_pb2, user_pb2
from memobase_server.services.usage import (
    UsageRecorder,
    UsageReports,
    first_of_next_month,
)
from memobase_server.storage.mongo.usage import DayUsage
from tests.conftest import ScriptedLLM, Stack, Stubs, create_project, start_server, stop_server

VALID_CONFIG = """\
language: en
profile_strict_mode: false
overwrite_user_profiles:
  - topic: "Work"
    description: "Job and career"
    sub_topics:
      - "Company"
      - name: title
        description: the job title
  - topic: pets
    sub_topics: [name, kind]
event_tags:
  - emotion
  - name: topic
    description: what the chat is about
"""

# Each is rejected with errno 400 and leaves the stored config as it was.
INVALID_CONFIGS = {
    "yaml": "language: [unclosed",
    "not a mapping": "- a\n- b\n",
    "language": "language: fr\n",
    "strict mode type": "profile_strict_mode: sometimes\n",
    "topics not a list": "overwrite_user_profiles: work\n",
    "topic without a name": "additional_user_profiles:\n  - sub_topics: [a]\n",
    "sub_topics not a list": "additional_user_profiles:\n  - topic: t\n    sub_topics: 3\n",
    "bad sub-topic": "additional_user_profiles:\n  - topic: t\n    sub_topics: [[x]]\n",
    "no topics at all": "overwrite_user_profiles: []\n",
    "topic twice": "overwrite_user_profiles:\n  - topic: a\n  - topic: A\n",
    "sub-topic twice": "additional_user_profiles:\n  - topic: a\n    sub_topics: [x, X]\n",
    "separator in a name": "additional_user_profiles:\n  - topic: 'a::b'\n",
    "bad tag": "event_tags: [[1]]\n",
    "too long": "event_theme_requirement: " + "x" * 70_000 + "\n",
}


def project_of(key: str) -> str:
    """The project id inside a key `sk-<project_id>-<secret>`."""
    return key[3 : key.rindex("-")]


def wait_until(check: Callable[[], bool], timeout: float = 8.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.1)
    raise AssertionError("condition not reached in time")


def raw(stack: Stack, token: str, method: str, path: str, **kwargs: Any) -> httpx.Response:
    return httpx.request(
        method,
        f"{stack.http_url}/api/v1{path}",
        headers={"Authorization": f"Bearer {token}"},
        timeout=30,
        **kwargs,
    )


def chat(*lines: str) -> ChatBlob:
    messages: list[Any] = []
    for line in lines:
        messages.append({"role": "user", "content": line})
        messages.append({"role": "assistant", "content": "Noted."})
    return ChatBlob(messages=messages)


@pytest.fixture
def project_sdk(stack: Stack, project_key: str) -> Iterator[MemoBaseClient]:
    """The SDK on a fresh project (the one the `project` fixture's stubs use)."""
    client = MemoBaseClient(api_key=project_key, project_url=stack.http_url)
    yield client
    client.client.close()


# --- profile config ------------------------------------------------------------------------


def test_profile_config_round_trip(project_sdk: MemoBaseClient, sdk: MemoBaseClient) -> None:
    assert project_sdk.get_config() == ""
    assert project_sdk.update_config(VALID_CONFIG) is True
    assert project_sdk.get_config() == VALID_CONFIG
    other = "language: zh\n# a comment is kept\nevent_tags: []\n"
    project_sdk.update_config(other)
    assert project_sdk.get_config() == other
    assert isinstance(sdk.get_config(), str), "the root project has a config too"


def test_invalid_configs_are_rejected_and_the_old_one_kept(
    stack: Stack, project_sdk: MemoBaseClient, project_key: str
) -> None:
    project_sdk.update_config(VALID_CONFIG)
    for case, text in INVALID_CONFIGS.items():
        with pytest.raises(ServerError):
            project_sdk.update_config(text)
        reply = raw(
            stack, project_key, "POST", "/project/profile_config", json={"profile_config": text}
        )
        body = reply.json()
        assert reply.status_code == 200, case
        assert body["errno"] == 400 and body["data"] is None, (case, body)
        assert "Traceback" not in body["errmsg"] and len(body["errmsg"]) < 300, case
        assert project_sdk.get_config() == VALID_CONFIG, case


def test_error_messages_name_the_field(stack: Stack, project_key: str) -> None:
    expected = {
        "language": "language",
        "topic without a name": "additional_user_profiles[0].topic",
        "sub_topics not a list": "additional_user_profiles[0].sub_topics",
        "topic twice": "overwrite_user_profiles[1].topic",
        "sub-topic twice": "additional_user_profiles[0].sub_topics[1]",
        "separator in a name": "additional_user_profiles[0].topic",
        "no topics at all": "overwrite_user_profiles",
        "yaml": "line 1",
    }
    for case, field in expected.items():
        body = raw(
            stack,
            project_key,
            "POST",
            "/project/profile_config",
            json={"profile_config": INVALID_CONFIGS[case]},
        ).json()
        assert field in body["errmsg"], (case, body["errmsg"])


def test_null_absent_and_empty_reset_to_the_defaults(
    stack: Stack, project_sdk: MemoBaseClient, project_key: str, database: Database[Any]
) -> None:
    stored = database["projects"]
    pid = project_of(project_key)
    for body in ({"profile_config": None}, {}, {"profile_config": ""}):
        project_sdk.update_config(VALID_CONFIG)
        reply = raw(stack, project_key, "POST", "/project/profile_config", json=body)
        assert reply.json() == {"data": None, "errno": 0, "errmsg": ""}, body
        assert project_sdk.get_config() == ""
        doc = stored.find_one({"_id": pid})
        assert doc is not None and doc["profile_config"] is None, body
    project_sdk.update_config(VALID_CONFIG)
    project_sdk.update_config(None)  # the SDK sends {"profile_config": null}
    assert project_sdk.get_config() == ""
    reply = raw(stack, project_key, "GET", "/project/profile_config")
    assert reply.json() == {"data": {"profile_config": ""}, "errno": 0, "errmsg": ""}


def test_profile_config_over_grpc(project: Stubs) -> None:
    get = project.projects.GetProfileConfig
    update = project.projects.UpdateProfileConfig
    md = project.metadata
    assert get(project_pb2.GetProfileConfigRequest(), metadata=md).profile_config == ""
    update(project_pb2.UpdateProfileConfigRequest(profile_config=VALID_CONFIG), metadata=md)
    assert get(project_pb2.GetProfileConfigRequest(), metadata=md).profile_config == VALID_CONFIG
    with pytest.raises(grpc.RpcError) as err:
        update(project_pb2.UpdateProfileConfigRequest(profile_config="language: de"), metadata=md)
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "language" in (err.value.details() or "")
    assert get(project_pb2.GetProfileConfigRequest(), metadata=md).profile_config == VALID_CONFIG
    update(project_pb2.UpdateProfileConfigRequest(), metadata=md)
    assert get(project_pb2.GetProfileConfigRequest(), metadata=md).profile_config == ""


def test_a_new_config_drives_the_next_flush(
    project_sdk: MemoBaseClient, database: Database[Any], llm: ScriptedLLM
) -> None:
    def slots(user_id: str) -> set[tuple[str, str]]:
        doc = database["profiles"].find_one({"user_id": user_id}) or {}
        return {(s["topic"], s["sub_topic"]) for s in doc.get("slots", [])}

    before = project_sdk.get_or_create_user(str(uuid.uuid4()))
    before.insert(chat("My name is Ada Lovelace.", "I live in London."))
    before.flush(sync=True)
    assert {("basic_info", "name"), ("contact_info", "city")} <= slots(before.user_id)

    project_sdk.update_config(
        "profile_strict_mode: true\n"
        "overwrite_user_profiles:\n"
        "  - topic: basic_info\n"
        "    sub_topics: [name]\n"
    )
    after = project_sdk.get_or_create_user(str(uuid.uuid4()))
    after.insert(chat("My name is Grace Hopper.", "I live in Paris."))
    after.flush(sync=True)
    assert slots(after.user_id) == {("basic_info", "name")}


def test_a_project_config_is_its_own(
    stack: Stack, project_sdk: MemoBaseClient, root: Stubs
) -> None:
    other = MemoBaseClient(api_key=create_project(root), project_url=stack.http_url)
    try:
        project_sdk.update_config(VALID_CONFIG)
        assert other.get_config() == ""
    finally:
        other.client.close()


# --- users listing -------------------------------------------------------------------------

# (profile slots, events) of the users, created in this order.
COUNTS = [(3, 0), (0, 2), (1, 4), (5, 1), (2, 3)]


def _seed_users(client: MemoBaseClient, database: Database[Any], project_id: str) -> list[str]:
    """Users created in order (so updated_at ascends), with profile slots and events written
    straight to the database."""
    ids = []
    now = datetime.now(UTC)
    for n, (slots, events) in enumerate(COUNTS):
        user_id = client.add_user({"name": f"user{n}", "n": n}, str(uuid.uuid4()))
        ids.append(user_id)
        if slots:
            database["profiles"].insert_one(
                {
                    "_id": f"{project_id}:{user_id}",
                    "project_id": project_id,
                    "user_id": user_id,
                    "version": 1,
                    "slots": [
                        {
                            "id": str(uuid.uuid4()),
                            "topic": "t",
                            "sub_topic": f"s{i}",
                            "content": "c",
                            "created_at": now,
                            "updated_at": now,
                        }
                        for i in range(slots)
                    ],
                    "applied_flushes": [],
                    "updated_at": now,
                }
            )
        for _ in range(events):
            _insert_event(database, project_id, user_id)
        time.sleep(0.01)
    return ids


def _insert_event(database: Database[Any], project_id: str, user_id: str) -> None:
    now = datetime.now(UTC)
    event_id = str(uuid.uuid4())
    database["events"].insert_one(
        {
            "_id": f"{project_id}:{user_id}:{event_id}",
            "project_id": project_id,
            "user_id": user_id,
            "event_id": event_id,
            "event_tip": "tip",
            "event_tags": [],
            "profile_delta": [],
            "created_at": now,
            "updated_at": now,
        }
    )


def _listing(stack: Stack, key: str, **params: Any) -> dict[str, Any]:
    body = raw(stack, key, "GET", "/project/users", params=params).json()
    assert body["errno"] == 0, body
    data: dict[str, Any] = body["data"]
    return data


def test_users_listing_shape_order_and_paging(
    stack: Stack, project_sdk: MemoBaseClient, project_key: str, database: Database[Any]
) -> None:
    pid = project_of(project_key)
    ids = _seed_users(project_sdk, database, pid)

    users = project_sdk.get_all_users()
    assert [u["id"] for u in users] == ids[::-1], "default: newest update first"
    first = users[-1]
    assert set(first) == {
        "id",
        "additional_fields",
        "project_id",
        "created_at",
        "updated_at",
        "profile_count",
        "event_count",
    }
    assert first["additional_fields"] == {"name": "user0", "n": 0}
    assert first["project_id"] == pid
    assert (first["profile_count"], first["event_count"]) == COUNTS[0]
    assert datetime.fromisoformat(first["created_at"]) <= datetime.fromisoformat(
        first["updated_at"]
    )
    assert {u["id"]: (u["profile_count"], u["event_count"]) for u in users} == dict(
        zip(ids, COUNTS, strict=True)
    )

    assert [u["id"] for u in project_sdk.get_all_users(order_desc=False)] == ids
    by_profiles = sorted(range(5), key=lambda i: COUNTS[i][0])
    by_events = sorted(range(5), key=lambda i: COUNTS[i][1])
    got = project_sdk.get_all_users(order_by="profile_count")
    assert [u["id"] for u in got] == [ids[i] for i in reversed(by_profiles)]
    got = project_sdk.get_all_users(order_by="profile_count", order_desc=False)
    assert [u["id"] for u in got] == [ids[i] for i in by_profiles]
    got = project_sdk.get_all_users(order_by="event_count")
    assert [u["id"] for u in got] == [ids[i] for i in reversed(by_events)]
    got = project_sdk.get_all_users(order_by="event_count", order_desc=False)
    assert [u["id"] for u in got] == [ids[i] for i in by_events]

    page = project_sdk.get_all_users(limit=2, offset=1)
    assert [u["id"] for u in page] == [ids[3], ids[2]]
    data = _listing(stack, project_key, order_by="event_count", limit=2, offset=2)
    assert [u["id"] for u in data["users"]] == [ids[1], ids[3]]
    assert data["count"] == 5, "count ignores paging"
    assert _listing(stack, project_key, offset=5) == {"users": [], "count": 5}
    assert _listing(stack, project_key, limit=1000)["count"] == 5


def test_users_search_is_a_plain_case_insensitive_substring(
    stack: Stack, project_sdk: MemoBaseClient, project_key: str, database: Database[Any]
) -> None:
    ids = _seed_users(project_sdk, database, project_of(project_key))
    part = ids[2][9:18]  # crosses a hyphen
    expected = [i for i in ids if part in i]
    got = project_sdk.get_all_users(search=part, order_desc=False)
    assert [u["id"] for u in got] == expected and ids[2] in expected
    assert [u["id"] for u in project_sdk.get_all_users(search=part.upper())][::-1] == expected
    assert _listing(stack, project_key, search=ids[4])["users"][0]["id"] == ids[4]
    assert _listing(stack, project_key, search="-")["count"] == 5
    assert _listing(stack, project_key, search="")["count"] == 5
    # Wildcards of LIKE and regular expressions are plain characters: no id holds them.
    for text in ("%", "_", "%%", ".*", ".", "^", "'", '"', "\\", "(", "[", "' OR '1'='1", "$ne"):
        assert _listing(stack, project_key, search=text) == {"users": [], "count": 0}, text
    for text in ("%", "_", ".*", "'", '"'):  # as the SDK sends them (no escaping)
        assert project_sdk.get_all_users(search=text) == [], text


def test_users_listing_validation(stack: Stack, project_key: str) -> None:
    for params in ({"limit": 0}, {"limit": 1001}, {"limit": -3}, {"offset": -1}):
        reply = raw(stack, project_key, "GET", "/project/users", params=params)
        assert reply.status_code == 200 and reply.json()["errno"] == 400, params
    reply = raw(stack, project_key, "GET", "/project/users", params={"order_by": "name"})
    assert reply.status_code == 422 and reply.json()["errno"] == 422


def test_users_listing_never_shows_another_projects_users(
    stack: Stack, project_sdk: MemoBaseClient, project_key: str, root: Stubs, sdk: MemoBaseClient
) -> None:
    mine = project_sdk.add_user({"mine": True})
    other_key = create_project(root)
    other = MemoBaseClient(api_key=other_key, project_url=stack.http_url)
    try:
        theirs = other.add_user({"theirs": True})
        assert [u["id"] for u in other.get_all_users()] == [theirs]
        assert [u["id"] for u in project_sdk.get_all_users()] == [mine]
        assert _listing(stack, project_key, search=theirs) == {"users": [], "count": 0}
        assert _listing(stack, stack.root_token, search=theirs) == {"users": [], "count": 0}
        assert sdk.get_all_users(search=mine) == []
    finally:
        other.client.close()


def test_users_listing_over_grpc(project: Stubs, project_key: str, database: Database[Any]) -> None:
    pid = project_of(project_key)
    ids = []
    for n in range(3):
        data = json_format.ParseDict({"n": n}, user_pb2.CreateUserRequest().data)
        created = project.users.CreateUser(
            user_pb2.CreateUserRequest(data=data), metadata=project.metadata
        )
        ids.append(created.id)
        time.sleep(0.01)
    _insert_event(database, pid, ids[0])
    list_users = project.projects.ListUsers
    reply = list_users(project_pb2.ListUsersRequest(), metadata=project.metadata)
    assert [u.id for u in reply.users] == ids[::-1] and reply.count == 3
    assert json_format.MessageToDict(reply.users[0].additional_fields) == {"n": 2}
    assert reply.users[0].project_id == pid and reply.users[0].created_at.seconds > 0
    reply = list_users(
        project_pb2.ListUsersRequest(
            order_by=project_pb2.USER_ORDER_EVENT_COUNT, order_desc=True, limit=1
        ),
        metadata=project.metadata,
    )
    assert [(u.id, u.event_count) for u in reply.users] == [(ids[0], 1)] and reply.count == 3
    reply = list_users(
        project_pb2.ListUsersRequest(order_desc=False, offset=1, limit=5, search=ids[1][:8]),
        metadata=project.metadata,
    )
    assert [u.id for u in reply.users] == [i for i in ids if ids[1][:8] in i][1:]
    for bad in (
        project_pb2.ListUsersRequest(limit=0),
        project_pb2.ListUsersRequest(offset=-1),
        project_pb2.ListUsersRequest(order_by=99),  # type: ignore[arg-type]
    ):
        with pytest.raises(grpc.RpcError) as err:
            list_users(bad, metadata=project.metadata)
        assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT


# --- usage and billing ---------------------------------------------------------------------


def _today() -> str:
    return datetime.now(UTC).date().isoformat()


def test_inserts_are_counted(stack: Stack, project_sdk: MemoBaseClient, project_key: str) -> None:
    user = project_sdk.get_or_create_user(str(uuid.uuid4()))
    for n in range(3):
        user.insert(chat(f"Message {n}"))
    with pytest.raises(ServerError):  # unknown user: counted, not a success
        project_sdk.get_user(str(uuid.uuid4()), no_get=True).insert(chat("hello"))
    bad_type = {"blob_type": "image", "blob_data": {"url": "x"}}
    reply = raw(stack, project_key, "POST", f"/blobs/insert/{user.user_id}", json=bad_type)
    assert reply.json()["errno"] == 400

    def counted() -> bool:
        today = project_sdk.get_daily_usage(1)[0]
        return (today["total_insert"], today["total_success_insert"]) == (5, 3)

    wait_until(counted)
    [today] = project_sdk.get_daily_usage(1)
    assert today == {
        "date": _today(),
        "total_insert": 5,
        "total_success_insert": 3,
        "total_input_token": 0,
        "total_output_token": 0,
    }


def test_daily_usage_shape_and_validation(
    stack: Stack, project_sdk: MemoBaseClient, project_key: str
) -> None:
    days = project_sdk.get_daily_usage()
    today = datetime.now(UTC).date()
    assert [d["date"] for d in days] == [(today - timedelta(days=n)).isoformat() for n in range(7)]
    assert all(
        d["total_insert"] == d["total_success_insert"] == 0
        and d["total_input_token"] == d["total_output_token"] == 0
        for d in days
    )
    assert len(project_sdk.get_daily_usage(400)) == 400
    reply = raw(stack, project_key, "GET", "/project/usage")
    assert reply.json()["errno"] == 0 and len(reply.json()["data"]) == 7
    for bad in (0, -1, 401, 100_000):
        with pytest.raises(ServerError):
            project_sdk.get_daily_usage(bad)
        reply = raw(stack, project_key, "GET", "/project/usage", params={"last_days": bad})
        assert reply.status_code == 200 and reply.json()["errno"] == 400, bad


def test_tokens_are_counted_after_a_flush(
    project_sdk: MemoBaseClient,
    project_key: str,
    database: Database[Any],
    llm: ScriptedLLM,
) -> None:
    pid = project_of(project_key)
    user = project_sdk.get_or_create_user(str(uuid.uuid4()))
    user.insert(chat("My name is Ada Lovelace and I live in London."))
    assert user.flush(sync=True) is True
    docs = list(database["usage"].find({"project_id": pid, "date": _today()}))
    record = {
        field: sum(int(d.get(field, 0)) for d in docs)
        for field in ("input_tokens", "output_tokens")
    }
    assert record["input_tokens"] > 0 and record["output_tokens"] > 0
    [today] = project_sdk.get_daily_usage(1)
    assert today["total_input_token"] == record["input_tokens"]
    assert today["total_output_token"] == record["output_tokens"]
    spent = record["input_tokens"] + record["output_tokens"]
    billing = project_sdk.get_usage()
    assert billing["project_token_cost_month"] == spent
    assert billing["token_left"] is None
    # The flush wrote profile slots and an event: the listing counts them.
    [listed] = project_sdk.get_all_users()
    assert listed["profile_count"] > 0 and listed["event_count"] == 1


def test_billing_shape(stack: Stack, project_sdk: MemoBaseClient, project: Stubs) -> None:
    billing = project_sdk.get_usage()
    assert set(billing) == {"token_left", "next_refill_at", "project_token_cost_month"}
    assert billing["token_left"] is None and billing["project_token_cost_month"] == 0
    refill = datetime.fromisoformat(billing["next_refill_at"])
    assert refill == first_of_next_month(datetime.now(UTC).date())
    assert refill.tzinfo is not None and refill.day == 1 and refill.hour == 0
    reply = project.projects.GetBilling(project_pb2.GetBillingRequest(), metadata=project.metadata)
    assert not reply.HasField("token_left") and reply.project_token_cost_month == 0
    assert reply.next_refill_at.ToDatetime(tzinfo=UTC) == refill


def test_usage_over_grpc(project: Stubs) -> None:
    daily = project.projects.GetDailyUsage
    reply = daily(project_pb2.GetDailyUsageRequest(), metadata=project.metadata)
    assert len(reply.usages) == 7 and reply.usages[0].date == _today()
    reply = daily(project_pb2.GetDailyUsageRequest(last_days=2), metadata=project.metadata)
    assert [u.total_insert for u in reply.usages] == [0, 0]
    with pytest.raises(grpc.RpcError) as err:
        daily(project_pb2.GetDailyUsageRequest(last_days=0), metadata=project.metadata)
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT


def test_monthly_token_limit_from_upstream_env_name(
    workdir: pathlib.Path, stack: Stack, database: Database[Any]
) -> None:
    """A second server with USAGE_TOKEN_LIMIT_ACTIVE set, on its own database."""
    name = f"{stack.mongo_database}_limit"
    process, _, http_port, _ = start_server(
        workdir,
        stack.mongo_url,
        stack.redis_url,
        name,
        USAGE_TOKEN_LIMIT_ACTIVE="10000",
        PROJECT_ID=f"limit{uuid.uuid4().hex[:6]}",
        MEMOBASE_FLUSH_WORKERS="0",
    )
    try:
        today = datetime.now(UTC).date()
        usage = database.client[name]["usage"]
        records = {today: (1000, 200)}
        if today.day > 1:
            records[today.replace(day=1)] = (30, 5)
        records[today.replace(day=1) - timedelta(days=1)] = (99_999, 1)  # last month
        for day, (tokens_in, tokens_out) in records.items():
            usage.insert_one(
                {
                    "_id": f"__root__:{day.isoformat()}",
                    "project_id": "__root__",
                    "date": day.isoformat(),
                    "input_tokens": tokens_in,
                    "output_tokens": tokens_out,
                }
            )
        spent = 1200 + (35 if today.day > 1 else 0)
        client = MemoBaseClient(
            api_key=stack.root_token, project_url=f"http://127.0.0.1:{http_port}"
        )
        try:
            billing = client.get_usage()
        finally:
            client.client.close()
        assert billing["project_token_cost_month"] == spent
        assert billing["token_left"] == 10_000 - spent
    finally:
        stop_server(process)
        database.client.drop_database(name)


# --- the recorder and reports on their own -------------------------------------------------


class MemoryUsageStore:
    def __init__(self) -> None:
        self.records: dict[tuple[str, date], DayUsage] = {}
        self.fail = False
        self.hang = False
        self.writes = 0

    async def add_inserts(
        self, project_id: str, day: date, inserts: int, successes: int, *, writer: str
    ) -> None:
        if self.hang:
            await asyncio.Event().wait()
        if self.fail:
            raise ConnectionError("database down")
        self.writes += 1
        old = self.records.get((project_id, day), DayUsage())
        self.records[(project_id, day)] = DayUsage(
            old.inserts + inserts,
            old.successful_inserts + successes,
            old.input_tokens,
            old.output_tokens,
        )

    async def days(self, project_id: str, days: Sequence[date]) -> dict[date, DayUsage]:
        return {d: self.records[(project_id, d)] for d in days if (project_id, d) in self.records}


async def test_recorder_batches_writes_and_keeps_counts_while_storage_fails() -> None:
    store = MemoryUsageStore()
    day = date(2025, 3, 1)
    recorder = UsageRecorder(store, interval_s=0.05, today=lambda: day)
    recorder.start()
    for n in range(100):
        recorder.count_insert("p", success=n % 4 != 0)
    recorder.count_insert("q", success=True)
    store.fail = True
    await asyncio.sleep(0.2)
    assert store.records == {} and recorder.pending == 101, "kept for the next try"
    store.fail = False
    for _ in range(50):
        await asyncio.sleep(0.05)
        if recorder.pending == 0:
            break
    assert store.records[("p", day)] == DayUsage(100, 75)
    assert store.records[("q", day)] == DayUsage(1, 1)
    assert store.writes == 2, "one write per project and day"
    recorder.count_insert("p", success=False)
    await recorder.close()
    assert store.records[("p", day)] == DayUsage(101, 75), "close writes what is left"


async def test_recorder_close_gives_up_after_its_timeout() -> None:
    store = MemoryUsageStore()
    recorder = UsageRecorder(store, interval_s=0.01)
    recorder.start()
    recorder.count_insert("p", success=True)
    store.hang = True
    await asyncio.sleep(0.05)  # a write is under way and never returns
    started = time.monotonic()
    await recorder.close(timeout_s=0.3)
    assert time.monotonic() - started < 2
    assert recorder.pending == 1 and store.records == {}, "the cancelled write is kept"


async def test_reports_limit_and_refill() -> None:
    store = MemoryUsageStore()
    today = date(2025, 12, 17)
    store.records[("p", today)] = DayUsage(input_tokens=100, output_tokens=20)
    store.records[("p", date(2025, 12, 1))] = DayUsage(input_tokens=5, output_tokens=5)
    store.records[("p", date(2025, 11, 30))] = DayUsage(input_tokens=999)
    for limit, left in ((None, None), (-1, None), (0, -130), (1000, 870)):
        billing = await UsageReports(store, monthly_token_limit=limit, today=lambda: today).billing(
            "p"
        )
        assert billing.token_left == left and billing.month_tokens == 130
        assert billing.next_refill_at == datetime(2026, 1, 1, tzinfo=UTC)
    reports = UsageReports(store, monthly_token_limit=None, today=lambda: today)
    days = await reports.daily("p", 20)
    assert [d.day for d in days][:2] == [today, date(2025, 12, 16)] and len(days) == 20
    assert days[0].usage.input_tokens == 100 and days[1].usage == DayUsage()
    assert days[16].day == date(2025, 12, 1) and days[17].usage.input_tokens == 999
