"""The typed Python client (`clients/python`, import `memobase_grpc`): sync and async against
the test stack, errors mapped to exceptions, and deadlines and retries against fake servers."""

from __future__ import annotations

import asyncio
import pathlib
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent import futures
from dataclasses import dataclass, field
from typing import Any

import grpc
import pytest

from memobase_grpc import (
    AlreadyExists,
    AsyncMemobaseClient,
    BlobType,
    ChatBlob,
    ChatMessage,
    DeadlineExceeded,
    DocBlob,
    InvalidArgument,
    MemobaseClient,
    MemobaseError,
    NotFound,
    ServerError,
    Unauthenticated,
    Unavailable,
    as_user_id,
    profiles_to_json,
    string_to_uuid,
)
from memobase_server.gen.memobase.v1 import blob_pb2, profile_pb2, project_pb2, user_pb2
from tests import servers
from tests.conftest import ScriptedLLM, Stack
from tests.test_pipeline import wait_until


def chat(*lines: str) -> ChatBlob:
    messages: list[dict[str, str]] = []
    for line in lines:
        messages += [{"role": "user", "content": line}, {"role": "assistant", "content": "Noted."}]
    return ChatBlob(messages=messages)


@pytest.fixture
def client(stack: Stack) -> Iterator[MemobaseClient]:
    with MemobaseClient(stack.grpc_target, stack.root_token, timeout=20) as c:
        yield c


# The README's examples, verbatim; the tests run them against the test stack.
README_SYNC = """\
from memobase_grpc import ChatBlob, MemobaseClient

with MemobaseClient("127.0.0.1:50051", "memobase-local-root-token") as client:
    assert client.ping()
    uid = client.add_user({"name": "Ada"})
    user = client.get_user(uid)
    user.insert(ChatBlob(messages=[{"role": "user", "content": "I live in London"}]))
    user.flush(sync=True)  # the flush runs the LLM: needs one configured
    print([p.describe for p in user.profile()])  # ['contact_info: city - London']
    print(user.context())
"""

README_ASYNC = """\
import asyncio
import uuid

from memobase_grpc import AsyncMemobaseClient, ChatBlob, NotFound


async def main() -> None:
    async with AsyncMemobaseClient(
        "127.0.0.1:50051", "memobase-local-root-token", timeout=10, retries=3
    ) as client:
        user = await client.get_or_create_user(str(uuid.uuid4()))
        await user.insert(ChatBlob(messages=[{"role": "user", "content": "My name is Ada"}]))
        await user.flush(sync=True)
        print([(p.topic, p.sub_topic, p.content) for p in await user.profile()])
        try:
            await client.get_user(str(uuid.uuid4()))
        except NotFound as exc:
            print(exc.code.name, exc.message)


asyncio.run(main())
"""


def run_readme(snippet: str, stack: Stack) -> None:
    """Runs a README example against the test stack, in a thread of its own (asyncio.run)."""
    code = snippet.replace("127.0.0.1:50051", stack.grpc_target).replace(
        "memobase-local-root-token", stack.root_token
    )
    failures: list[BaseException] = []

    def run() -> None:
        try:
            exec(compile(code, "README.md", "exec"), {"__name__": "__readme__"})
        except BaseException as exc:
            failures.append(exc)

    thread = threading.Thread(target=run)
    thread.start()
    thread.join(60)
    if failures:
        raise failures[0]


def test_readme_examples(
    stack: Stack, llm: ScriptedLLM, capsys: pytest.CaptureFixture[str]
) -> None:
    run_readme(README_SYNC, stack)
    printed = capsys.readouterr().out.splitlines()
    assert printed[0] == "['contact_info: city - London']"
    assert "- contact_info::city: London" in printed
    run_readme(README_ASYNC, stack)
    printed = capsys.readouterr().out.splitlines()
    assert printed[0] == "[('basic_info', 'name', 'Ada')]"
    assert printed[1].startswith("NOT_FOUND ")


def test_users(client: MemobaseClient) -> None:
    assert client.ping() is True
    uid = client.add_user({"name": "Ada", "tags": ["x"]})
    assert uuid.UUID(uid).version == 4
    user = client.get_user(uid)
    assert user.user_id == uid and user.fields == {"name": "Ada", "tags": ["x"]}
    assert user.data is not None and user.data.created_at is not None
    assert client.update_user(uid, {"name": "Ada King"}) == uid
    assert client.get_user(uid).fields == {"name": "Ada King"}
    assert client.get_user(uid, no_get=True).fields is None

    chosen = str(uuid.uuid4())
    assert client.add_user(id=chosen) == chosen
    with pytest.raises(AlreadyExists):
        client.add_user(id=chosen)
    fresh = str(uuid.uuid4())
    assert client.get_or_create_user(fresh).user_id == fresh
    assert client.get_or_create_user(fresh).user_id == fresh

    assert client.delete_user(uid) is True
    with pytest.raises(NotFound) as caught:
        client.get_user(uid)
    assert caught.value.code == grpc.StatusCode.NOT_FOUND
    assert isinstance(caught.value, ServerError)


def test_blobs_buffer_and_memory(client: MemobaseClient, llm: ScriptedLLM) -> None:
    user = client.get_or_create_user(str(uuid.uuid4()))
    first = user.insert(chat("My name is Ada and I live in London. #emotion=happy"))
    second = user.insert(chat("I love jazz music."))
    doc = user.insert(DocBlob(content="a note", fields={"source": "test"}))
    stored = user.get(first)
    assert isinstance(stored, ChatBlob) and stored.created_at is not None
    assert stored.messages[0] == ChatMessage(
        "user", "My name is Ada and I live in London. #emotion=happy"
    )
    stored_doc = user.get(doc)
    assert isinstance(stored_doc, DocBlob)
    assert (stored_doc.content, stored_doc.fields) == ("a note", {"source": "test"})
    assert user.get_all(BlobType.chat) == [first, second]
    assert user.get_all("doc") == [doc]
    assert len(user.buffer()) == 2
    assert user.delete(doc) is True and user.get_all("doc") == []

    assert user.flush(sync=True) is True
    assert user.buffer() == [] and user.get_all() == []  # processed chats are not kept
    profile = {(p.topic, p.sub_topic): p for p in user.profile()}
    assert profile[("basic_info", "name")].content == "Ada"
    assert profile[("contact_info", "city")].content == "London"
    assert profiles_to_json(list(profile.values()))["basic_info"]["name"]["content"] == "Ada"
    assert [p.topic for p in user.profile(only_topics=["contact_info"])] == ["contact_info"]

    slot = user.add_profile("tea", "interest", "drinks")
    assert user.update_profile(slot, "green tea", "interest", "drinks") is True
    assert {p.id: p.content for p in user.profile()}[slot] == "green tea"
    assert user.delete_profile(slot) is True
    with pytest.raises(NotFound):
        user.delete_profile(slot)

    [event] = user.event()
    assert "I love jazz music." in (event.event_data.event_tip or "")
    assert {d.attributes["topic"] for d in event.event_data.profile_delta} >= {"basic_info"}
    [tagged] = user.search_event_by_tags(tags=["emotion"])
    assert tagged.id == event.id
    wait_until(lambda: user.search_event_gist("jazz music", similarity_threshold=0.1) != [])
    gist = user.search_event_gist("jazz music", similarity_threshold=0.1)[0]
    assert "jazz" in gist.content and gist.similarity is not None
    [found] = user.search_event("jazz music", similarity_threshold=0.1)
    assert found.id == event.id and found.similarity is not None
    assert "- basic_info::name: Ada" in user.context()

    assert user.update_event(event.id, {"event_tip": "- likes jazz"}) is True
    assert user.event()[0].event_data.event_tip == "- likes jazz"
    assert user.delete_event(event.id) is True
    assert user.event() == []


async def test_async_client(stack: Stack, llm: ScriptedLLM) -> None:
    async with AsyncMemobaseClient(stack.grpc_target, stack.root_token) as client:
        assert await client.ping()
        user = await client.get_or_create_user(str(uuid.uuid4()))
        ids = await asyncio.gather(*(user.insert(chat(f"I am {n} years old.")) for n in (30, 31)))
        assert sorted(await user.get_all()) == sorted(ids)
        assert await user.flush(sync=True)
        [age] = await user.profile()
        assert (age.topic, age.sub_topic) == ("basic_info", "age")
        assert [e.id for e in await user.event(topk=5)] != []
        assert "basic_info::age" in await user.context(max_token_size=200)
        with pytest.raises(NotFound):
            await client.get_user(str(uuid.uuid4()))
        assert await client.delete_user(user.user_id)


def test_errors_map_to_exceptions(stack: Stack, client: MemobaseClient) -> None:
    with pytest.raises(InvalidArgument) as malformed:
        client.get_user("not-a-uuid")
    assert malformed.value.reason == "MALFORMED_REQUEST"
    user = client.get_or_create_user(str(uuid.uuid4()))
    with pytest.raises(NotFound, match="NOT_FOUND"):
        user.get(str(uuid.uuid4()))
    with pytest.raises(InvalidArgument):
        user.get_all(page=-1)
    with pytest.raises(ValueError, match="Unknown blob type"):
        user.get_all("video")
    with pytest.raises(ValueError, match="Invalid chat message"):
        user.insert(ChatBlob(messages=[{"role": "robot", "content": "hi"}]))
    with MemobaseClient(stack.grpc_target, "wrong-token") as stranger:
        assert stranger.ping(), "the health check needs no token"
        with pytest.raises(Unauthenticated) as denied:
            stranger.add_user()
        assert denied.value.code == grpc.StatusCode.UNAUTHENTICATED
        assert isinstance(denied.value, MemobaseError)


def test_user_ids_from_strings() -> None:
    assert string_to_uuid("alice") == str(uuid.uuid5(uuid.NAMESPACE_DNS, "alicememobase_client"))
    assert as_user_id("alice") == string_to_uuid("alice")
    some = uuid.uuid4()
    assert as_user_id(str(some).upper()) == str(some)


def test_a_token_is_required(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MEMOBASE_API_KEY", raising=False)
    monkeypatch.delenv("MEMOBASE_TOKEN", raising=False)
    with pytest.raises(ValueError, match="MEMOBASE_API_KEY"):
        AsyncMemobaseClient("127.0.0.1:1")
    monkeypatch.setenv("MEMOBASE_TOKEN", "from-env")
    assert AsyncMemobaseClient("127.0.0.1:1").target == "127.0.0.1:1"


# -- deadlines and retries, against fake servers ---------------------------------------------


@dataclass
class Fake:
    """A thread-pool gRPC server whose handlers fail the first `fail` calls with UNAVAILABLE."""

    fail: int = 0
    delay: float = 0.0
    calls: dict[str, int] = field(default_factory=dict)
    tokens: list[str] = field(default_factory=list)
    keys: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def enter(self, name: str, context: grpc.ServicerContext) -> None:
        with self.lock:
            self.calls[name] = self.calls.get(name, 0) + 1
            count = self.calls[name]
            self.tokens += [
                v
                for k, v in context.invocation_metadata()
                if k == "authorization" and isinstance(v, str)
            ]
        time.sleep(self.delay)
        if count <= self.fail:
            context.abort(grpc.StatusCode.UNAVAILABLE, "try again")


def _handlers(fake: Fake) -> list[grpc.GenericRpcHandler[Any, Any]]:
    """Healthcheck, CreateUser, InsertBlob and AddProfile, counted and failed as `fake` says."""
    created: set[str] = set()

    def healthcheck(
        request: project_pb2.HealthcheckRequest, context: grpc.ServicerContext
    ) -> project_pb2.HealthcheckResponse:
        fake.enter("Healthcheck", context)
        return project_pb2.HealthcheckResponse()

    def create_user(
        request: user_pb2.CreateUserRequest, context: grpc.ServicerContext
    ) -> user_pb2.CreateUserResponse:
        # The first attempt is applied, then its answer is lost.
        if request.id in created:
            context.abort(grpc.StatusCode.ALREADY_EXISTS, "taken")
        created.add(request.id)
        fake.enter("CreateUser", context)
        return user_pb2.CreateUserResponse(id=request.id)

    def insert_blob(
        request: blob_pb2.InsertBlobRequest, context: grpc.ServicerContext
    ) -> blob_pb2.InsertBlobResponse:
        with fake.lock:
            fake.keys.append(request.idempotency_key)
        fake.enter("InsertBlob", context)
        blob_id = uuid.uuid5(uuid.NAMESPACE_OID, request.idempotency_key)
        return blob_pb2.InsertBlobResponse(id=str(blob_id))

    def add_profile(
        request: profile_pb2.AddProfileRequest, context: grpc.ServicerContext
    ) -> profile_pb2.AddProfileResponse:
        fake.enter("AddProfile", context)
        return profile_pb2.AddProfileResponse(id=str(uuid.uuid4()))

    def unary(behaviour: Any, request: Any, response: Any) -> grpc.RpcMethodHandler[Any, Any]:
        return grpc.unary_unary_rpc_method_handler(
            behaviour,
            request_deserializer=request.FromString,
            response_serializer=response.SerializeToString,
        )

    return [
        grpc.method_handlers_generic_handler(
            "memobase.v1.ProjectService",
            {
                "Healthcheck": unary(
                    healthcheck, project_pb2.HealthcheckRequest, project_pb2.HealthcheckResponse
                )
            },
        ),
        grpc.method_handlers_generic_handler(
            "memobase.v1.UserService",
            {
                "CreateUser": unary(
                    create_user, user_pb2.CreateUserRequest, user_pb2.CreateUserResponse
                )
            },
        ),
        grpc.method_handlers_generic_handler(
            "memobase.v1.BlobService",
            {
                "InsertBlob": unary(
                    insert_blob, blob_pb2.InsertBlobRequest, blob_pb2.InsertBlobResponse
                )
            },
        ),
        grpc.method_handlers_generic_handler(
            "memobase.v1.ProfileService",
            {
                "AddProfile": unary(
                    add_profile, profile_pb2.AddProfileRequest, profile_pb2.AddProfileResponse
                )
            },
        ),
    ]


@pytest.fixture
def fake_server() -> Iterator[Callable[..., tuple[str, Fake]]]:
    started: list[grpc.Server] = []

    def start(**options: Any) -> tuple[str, Fake]:
        fake = Fake(**options)
        server = grpc.server(futures.ThreadPoolExecutor(max_workers=8))
        server.add_generic_rpc_handlers(_handlers(fake))
        port = server.add_insecure_port("127.0.0.1:0")
        server.start()
        started.append(server)
        return f"127.0.0.1:{port}", fake

    yield start
    for server in started:
        server.stop(None)


def test_unavailable_is_retried_with_backoff(fake_server: Callable[..., tuple[str, Fake]]) -> None:
    target, fake = fake_server(fail=2)
    with MemobaseClient(target, "tok", retries=3, backoff=0.05) as client:
        started = time.monotonic()
        assert client.ping() is True
        assert fake.calls["Healthcheck"] == 3
        assert time.monotonic() - started >= 0.05 * 0.5 + 0.1 * 0.5  # two backoff waits
        assert set(fake.tokens) == {"Bearer tok"}

        user = client.get_user(str(uuid.uuid4()), no_get=True)
        blob_id = user.insert(chat("hi"))
        assert fake.calls["InsertBlob"] == 3
        assert len(set(fake.keys)) == 1, "every attempt carries the same idempotency key"
        assert blob_id == str(uuid.uuid5(uuid.NAMESPACE_OID, fake.keys[0]))
        user.insert(chat("again"), idempotency_key="mine")
        assert fake.keys[-1] == "mine"

        # A generated id that a retried attempt finds taken was created by this very call.
        uid = client.add_user()
        assert fake.calls["CreateUser"] == 1 and uuid.UUID(uid).version == 4

        with pytest.raises(Unavailable):  # adding a slot is not idempotent: never retried
            user.add_profile("x", "t", "s")
        assert fake.calls["AddProfile"] == 1


def test_retries_are_bounded(fake_server: Callable[..., tuple[str, Fake]]) -> None:
    target, fake = fake_server(fail=100)
    with MemobaseClient(target, "tok", retries=2, backoff=0.01) as client:
        assert client.ping() is False
        assert fake.calls["Healthcheck"] == 3
        with pytest.raises(Unavailable, match="try again") as caught:
            client.get_user(str(uuid.uuid4()), no_get=True).insert(chat("x"))
        assert caught.value.code == grpc.StatusCode.UNAVAILABLE
        assert fake.calls["InsertBlob"] == 3
    with MemobaseClient(target, "tok", retries=0) as client:
        assert client.ping() is False
        assert fake.calls["Healthcheck"] == 4


def test_nothing_listening_fails_fast_after_retries() -> None:
    attempts = 0

    class Count(grpc.aio.UnaryUnaryClientInterceptor):  # type: ignore[type-arg]
        async def intercept_unary_unary(
            self, continuation: Any, client_call_details: Any, request: Any
        ) -> Any:
            nonlocal attempts
            attempts += 1
            return await continuation(client_call_details, request)

    target = f"127.0.0.1:{servers.free_port()}"
    with MemobaseClient(
        target, "tok", timeout=5, retries=3, backoff=0.01, interceptors=[Count()]
    ) as c:
        started = time.monotonic()
        with pytest.raises(Unavailable):
            c.add_user(id=str(uuid.uuid4()))
    assert attempts == 4
    assert time.monotonic() - started < 4


def test_deadline(fake_server: Callable[..., tuple[str, Fake]]) -> None:
    target, fake = fake_server(delay=1.0)
    with MemobaseClient(target, "tok", timeout=0.3) as client:
        started = time.monotonic()
        with pytest.raises(DeadlineExceeded):
            client.get_user(str(uuid.uuid4()), no_get=True).add_profile("x", "t", "s")
        assert time.monotonic() - started < 0.9
    # Retries share the call's deadline: waiting for another attempt stops at the deadline.
    target, fake = fake_server(fail=100)
    with MemobaseClient(target, "tok", timeout=0.5, retries=50, backoff=0.2, max_backoff=0.2) as c:
        started = time.monotonic()
        assert c.ping() is False
        assert time.monotonic() - started < 0.9
        assert 2 <= fake.calls["Healthcheck"] <= 5


async def test_async_client_retries(fake_server: Callable[..., tuple[str, Fake]]) -> None:
    target, fake = fake_server(fail=1)
    async with AsyncMemobaseClient(target, "tok", backoff=0.01) as client:
        assert await client.ping()
        assert fake.calls["Healthcheck"] == 2


def test_readme_shows_the_examples_these_tests_run() -> None:
    readme = (pathlib.Path(__file__).resolve().parent.parent / "README.md").read_text()
    assert README_SYNC in readme and README_ASYNC in readme
