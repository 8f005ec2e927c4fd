"""The fault suite: flushes under crashes, stale leases, a wiped Redis, a failing model and
retrying clients, checked against a ledger of acknowledged inserts (the blob ids the API
returned). After recovery every acknowledged chat must be applied exactly once:

- lost = 0: its text is in exactly one event's tip, in exactly one committed flush record,
  and no buffer entry of the user is left idle, processing or failed;
- applied twice = 0: no chat in two events or two committed flushes, one event per flush,
  one gist per tip line, no profile slot doubled.

Servers and `memobase-server worker` processes run as child processes, each group on its own
database and Redis namespace (`PROJECT_ID`). Tests whose settings agree share one server (the
module's `cluster`: no in-process workers, so every background flush runs in worker processes
the test starts with its own lease and crash points); the others start their own.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import pathlib
import signal
import subprocess
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
import redis
from pymongo import MongoClient
from pymongo.database import Database

from memobase_server.domain.flush_plan import FlushRecord, FlushState
from memobase_server.domain.models import BlobType, utcnow
from memobase_server.domain.profiles import UserProfile
from memobase_server.storage.mongo.database import MongoDatabase
from memobase_server.storage.mongo.flushes import MongoFlushRepo
from memobase_server.storage.mongo.profiles import MongoProfileRepo
from tests import servers
from tests.conftest import ROOT_TOKEN, ScriptedLLM, start_server, start_worker, stop_server

Db = Database[dict[str, Any]]

UNSETTLED = ["idle", "processing", "failed"]
CITIES = ["Lisbon", "Oslo", "Nairobi", "Kyoto", "Denver", "Porto", "Tallinn", "Austin", "Lima"]
HOBBIES = ["tennis", "jazz music", "sushi", "crime novels", "yoga", "old films", "chess"]
JOBS = ["a nurse", "a baker", "a pilot", "an architect", "a teacher", "a welder"]


def wait_until(check: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.1)
    raise AssertionError(f"not reached within {timeout:g} s: {what}")


# --- the ledger ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Acked:
    user_id: str
    blob_id: str
    marker: str


@dataclass
class Ledger:
    """Every insert the API acknowledged, with the unique marker its chat carries."""

    acked: list[Acked] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, user_id: str, blob_id: str, marker: str) -> None:
        with self._lock:
            self.acked.append(Acked(user_id, blob_id, marker))

    def users(self) -> list[str]:
        return sorted({a.user_id for a in self.acked})

    def of(self, user_id: str) -> list[Acked]:
        return [a for a in self.acked if a.user_id == user_id]


def new_marker() -> str:
    return f"ref{uuid.uuid4().hex[:10]}"


def chat_messages(marker: str, n: int) -> list[dict[str, str]]:
    """One exchange whose user turn carries the marker and fills a few profile slots."""
    city, hobby, job = CITIES[n % len(CITIES)], HOBBIES[n % len(HOBBIES)], JOBS[n % len(JOBS)]
    return [
        {"role": "user", "content": f"Note {marker}: I live in {city} and I enjoy {hobby}."},
        {"role": "assistant", "content": f"{city} sounds lovely. What do you do there?"},
        {"role": "user", "content": f"I am {job}, for a while now."},
        {"role": "assistant", "content": "Thanks for telling me."},
    ]


class Api:
    """The REST API as a plain HTTP client (one per thread)."""

    def __init__(self, http_url: str) -> None:
        self.http = httpx.Client(
            base_url=f"{http_url}/api/v1",
            headers={"Authorization": f"Bearer {ROOT_TOKEN}"},
            timeout=60,
        )

    def close(self) -> None:
        self.http.close()

    def call(self, method: str, path: str, **kwargs: Any) -> dict[str, Any]:
        reply = self.http.request(method, path, **kwargs)
        assert reply.status_code == 200, reply.text
        envelope: dict[str, Any] = reply.json()
        return envelope

    def ok(self, method: str, path: str, **kwargs: Any) -> Any:
        envelope = self.call(method, path, **kwargs)
        assert envelope["errno"] == 0, envelope
        return envelope["data"]

    def create_user(self) -> str:
        user_id: str = self.ok("POST", "/users", json={"data": {}})["id"]
        return user_id

    def insert(
        self, user_id: str, marker: str, n: int = 0, *, idempotency_key: str | None = None
    ) -> str:
        params = {"idempotency_key": idempotency_key} if idempotency_key else {}
        body = {"blob_type": "chat", "blob_data": {"messages": chat_messages(marker, n)}}
        blob_id: str = self.ok("POST", f"/blobs/insert/{user_id}", json=body, params=params)["id"]
        return blob_id

    def insert_acked(self, ledger: Ledger, user_id: str, n: int = 0) -> str:
        marker = new_marker()
        blob_id = self.insert(user_id, marker, n)
        ledger.add(user_id, blob_id, marker)
        return blob_id

    def flush(self, user_id: str, *, sync: bool) -> dict[str, Any]:
        """The envelope of a flush request (sync: the flush ran; else: it was queued)."""
        return self.call(
            "POST", f"/users/buffer/{user_id}/chat", params={"wait_process": str(sync)}
        )


# --- checks -------------------------------------------------------------------------------------


def unsettled(db: Db, user_id: str) -> list[dict[str, Any]]:
    return list(db["blobs"].find({"user_id": user_id, "buffer.status": {"$in": UNSETTLED}}))


def unfinished_flushes(db: Db, user_id: str) -> list[dict[str, Any]]:
    return list(db["flushes"].find({"user_id": user_id, "state": {"$in": ["claimed", "computed"]}}))


def flush_records(db: Db, user_id: str) -> list[dict[str, Any]]:
    return list(db["flushes"].find({"user_id": user_id}).sort("created_at", 1))


def settled(db: Db, users: list[str]) -> bool:
    return all(not unsettled(db, u) and not unfinished_flushes(db, u) for u in users)


def wait_settled(db: Db, users: list[str], timeout: float = 30) -> None:
    wait_until(lambda: settled(db, users), timeout, f"every chat of {len(users)} users applied")


def check_exactly_once(db: Db, ledger: Ledger) -> None:
    """lost = 0 and applied twice = 0 for every acknowledged insert of the ledger."""
    problems: list[str] = []
    for user_id in ledger.users():
        mine = ledger.of(user_id)
        events = list(db["events"].find({"user_id": user_id}))
        tips = [e.get("event_tip") or "" for e in events]
        records = flush_records(db, user_id)
        committed = [r for r in records if r["state"] == "committed"]
        in_records = Counter(b for r in committed for b in r["blob_ids"])
        for acked in mine:
            seen = sum(tip.count(acked.marker) for tip in tips)
            if seen != 1:
                problems.append(f"{user_id}: chat {acked.marker} is in {seen} event tips")
            if in_records[acked.blob_id] != 1:
                problems.append(
                    f"{user_id}: blob {acked.blob_id} is in {in_records[acked.blob_id]} "
                    "committed flushes"
                )
        for doc in unsettled(db, user_id):
            problems.append(f"{user_id}: entry {doc['blob_id']} left {doc['buffer']['status']}")
        for record in unfinished_flushes(db, user_id):
            problems.append(f"{user_id}: flush {record['flush_id']} left {record['state']}")
        committed_ids = {r["flush_id"] for r in committed}
        per_flush = Counter(e.get("flush_id") for e in events)
        for flush_id, count in per_flush.items():
            if count != 1 or flush_id not in committed_ids:
                problems.append(f"{user_id}: {count} events of flush {flush_id} (committed?)")
        for event in events:
            lines = [line for line in (event.get("event_tip") or "").splitlines() if line]
            gists = db["event_gists"].count_documents(
                {"user_id": user_id, "event_id": event["event_id"]}
            )
            if gists != len(lines):
                problems.append(f"{user_id}: event with {len(lines)} lines has {gists} gists")
        problems += profile_problems(db, user_id)
    assert not problems, "\n".join(problems)


def profile_problems(db: Db, user_id: str) -> list[str]:
    doc = db["profiles"].find_one({"user_id": user_id}) or {}
    slots = doc.get("slots", [])
    problems = []
    keys = Counter((s["topic"], s["sub_topic"]) for s in slots)
    problems += [f"{user_id}: slot {key} stored {n} times" for key, n in keys.items() if n > 1]
    for slot in slots:
        parts = [p.strip() for p in slot["content"].split(";") if p.strip()]
        if len(parts) != len(set(parts)):
            problems.append(f"{user_id}: slot content doubled: {slot['content']!r}")
    applied: Counter[str] = Counter(doc.get("applied_flushes", []))
    problems += [f"{user_id}: flush {f} applied {n} times" for f, n in applied.items() if n > 1]
    return problems


# --- deployments --------------------------------------------------------------------------------


@dataclass
class Worker:
    process: subprocess.Popen[bytes]
    log_path: pathlib.Path

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def signal(self, sig: signal.Signals) -> None:
        os.kill(self.process.pid, sig)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.signal(signal.SIGCONT)
            stop_server(self.process)


@dataclass
class Deployment:
    """A server (REST + gRPC + scheduler) on its own database and Redis namespace, and the
    worker processes started for it, which share the server's environment."""

    tmp: pathlib.Path
    mongo_url: str
    redis_url: str
    database: str
    env: dict[str, str]
    process: subprocess.Popen[bytes]
    http_url: str
    db: Db
    api: Api
    workers: list[Worker] = field(default_factory=list)

    def start_worker(self, name: str = "worker", **env: str) -> Worker:
        process, log_path = start_worker(
            self.tmp,
            self.mongo_url,
            self.redis_url,
            self.database,
            name=name,
            **{**self.env, **env},
        )
        worker = Worker(process, log_path)
        self.workers.append(worker)
        return worker

    def start_workers(self, count: int, **env: str) -> list[Worker]:
        with ThreadPoolExecutor(count) as pool:
            return list(pool.map(lambda i: self.start_worker(f"worker{i}", **env), range(count)))

    def stop_workers(self) -> None:
        if self.workers:
            with ThreadPoolExecutor(len(self.workers)) as pool:
                list(pool.map(Worker.stop, self.workers))
        self.workers.clear()


@contextlib.contextmanager
def deploy(
    tmp: pathlib.Path, mongo_url: str, redis_url: str, llm: ScriptedLLM, **settings: str
) -> Iterator[Deployment]:
    tmp.mkdir(parents=True, exist_ok=True)
    database = f"memobase_faults_{uuid.uuid4().hex[:8]}"
    env = {**llm.server_env(), "PROJECT_ID": f"faults-{uuid.uuid4().hex[:8]}", **settings}
    process, _, http_port, _ = start_server(tmp, mongo_url, redis_url, database, **env)
    client: MongoClient[dict[str, Any]] = MongoClient(mongo_url, tz_aware=True)
    api = Api(f"http://127.0.0.1:{http_port}")
    deployment = Deployment(
        tmp,
        mongo_url,
        redis_url,
        database,
        env,
        process,
        f"http://127.0.0.1:{http_port}",
        client[database],
        api,
    )
    try:
        yield deployment
    finally:
        deployment.stop_workers()
        api.close()
        client.close()
        if process.poll() is None:
            stop_server(process)


# Workers get a short lease (and so a short reclaim time) and a model timeout above the
# scripted latencies used here; the shared server keeps a 1 s model timeout for its own
# (sync) flushes, which the model-outage test relies on.
WORKER_ENV = {"MEMOBASE_FLUSH_WORKERS": "2", "MEMOBASE_LLM_TIMEOUT_SECONDS": "10"}


@pytest.fixture(scope="module")
def cluster(
    tmp_path_factory: pytest.TempPathFactory,
    mongo_url: str,
    redis_url: str,
    scripted_llm: ScriptedLLM,
) -> Iterator[Deployment]:
    with deploy(
        tmp_path_factory.mktemp("faults-cluster"),
        mongo_url,
        redis_url,
        scripted_llm,
        MEMOBASE_FLUSH_WORKERS="0",
        MEMOBASE_LLM_TIMEOUT_SECONDS="1",
    ) as deployment:
        yield deployment


@pytest.fixture
def workers(cluster: Deployment) -> Iterator[Deployment]:
    """The shared server, with every worker process a test starts stopped after it."""
    try:
        yield cluster
    finally:
        cluster.stop_workers()


# --- 1. kill -9 of a worker mid-LLM-call -------------------------------------------------------


def test_worker_killed_during_the_model_call_loses_nothing(
    workers: Deployment, llm: ScriptedLLM
) -> None:
    db, api, ledger = workers.db, workers.api, Ledger()
    doomed = workers.start_worker("doomed", **WORKER_ENV, MEMOBASE_FLUSH_LEASE_SECONDS="3")
    user = api.create_user()
    for n in range(3):
        api.insert_acked(ledger, user, n)
    llm.faults(mode="none", latency_ms=2000)
    assert api.flush(user, sync=False)["errno"] == 0
    wait_until(lambda: llm.stats()["calls"].get("extract", 0) >= 1, 15, "the model is called")
    [record] = unfinished_flushes(db, user)
    assert record["state"] == "claimed"
    doomed.signal(signal.SIGKILL)
    doomed.process.wait(timeout=10)
    llm.faults(mode="none")
    assert {d["buffer"]["status"] for d in unsettled(db, user)} == {"processing"}

    workers.start_worker("rescuer", **WORKER_ENV, MEMOBASE_FLUSH_LEASE_SECONDS="3")
    wait_settled(db, [user])
    check_exactly_once(db, ledger)
    states = {r["flush_id"]: r["state"] for r in flush_records(db, user)}
    assert states[record["flush_id"]] == "abandoned"
    assert sorted(states.values()) == ["abandoned", "committed"]


# --- 2. crash points ----------------------------------------------------------------------------

CRASH_POINTS = ("after_claim", "after_compute", "after_event", "after_profile")


def crash_point_reached(db: Db, user_id: str) -> str:
    """Where a flush of the user died, read from what it left behind."""
    [record] = flush_records(db, user_id)
    has_event = db["events"].count_documents({"user_id": user_id}) == 1
    profile = db["profiles"].find_one({"user_id": user_id}) or {}
    applied = record["flush_id"] in profile.get("applied_flushes", [])
    left = (record["state"], has_event, applied)
    return {
        ("claimed", False, False): "after_claim",
        ("computed", False, False): "after_compute",
        ("computed", True, False): "after_event",
        ("computed", True, True): "after_profile",
    }.get(left, f"unexpected {left}")


def test_workers_dying_at_each_crash_point_are_finished_once_by_another(
    workers: Deployment, llm: ScriptedLLM
) -> None:
    """One worker per crash point (one flush at a time each), one user per worker: each worker
    takes one job and dies at its point; then a fresh worker finishes every flush."""
    db, api, ledger = workers.db, workers.api, Ledger()
    env = {**WORKER_ENV, "MEMOBASE_FLUSH_WORKERS": "1", "MEMOBASE_FLUSH_LEASE_SECONDS": "2"}
    with ThreadPoolExecutor(len(CRASH_POINTS)) as pool:
        crashing = list(
            pool.map(
                lambda point: workers.start_worker(point, **env, MEMOBASE_CRASH_POINTS=point),
                CRASH_POINTS,
            )
        )
    users = [api.create_user() for _ in CRASH_POINTS]
    for n in range(2):
        for user in users:
            api.insert_acked(ledger, user, n)
    for user in users:
        assert api.flush(user, sync=False)["errno"] == 0
    assert [w.process.wait(timeout=20) for w in crashing] == [137] * len(CRASH_POINTS)

    assert sorted(crash_point_reached(db, user) for user in users) == sorted(CRASH_POINTS)
    for user in users:
        assert {d["buffer"]["status"] for d in unsettled(db, user)} == {"processing"}

    workers.start_worker("rescuer", **env)
    wait_settled(db, users)
    check_exactly_once(db, ledger)
    # Each user's chats reached the model once: a bare claim died before calling it and is
    # computed by the rescuer; a stored plan is committed as it is, without a second call.
    assert llm.stats()["calls"]["extract"] == len(users)


# --- 3. two workers, a lease shorter than the model call ---------------------------------------


def test_two_workers_with_a_lease_shorter_than_the_model_call_apply_once(
    workers: Deployment, llm: ScriptedLLM
) -> None:
    db, api, ledger = workers.db, workers.api, Ledger()
    first, second = workers.start_workers(2, **WORKER_ENV, MEMOBASE_FLUSH_LEASE_SECONDS="1")
    llm.faults(mode="none", latency_ms=3000, steps=["extract"])

    # a) Both workers get jobs for one user while flushes run (each job is reclaimed by the
    #    other worker after 1 s, since it stays unacknowledged for the whole flush).
    busy = api.create_user()
    for n in range(4):
        api.insert_acked(ledger, busy, n)
        assert api.flush(busy, sync=False)["errno"] == 0
        time.sleep(0.4)

    # b) A worker whose lease really expires mid-flush (stopped by SIGSTOP while waiting on the
    #    model), the other takes over, then the stale one wakes up and carries on.
    stale_user = api.create_user()
    for n in range(3):
        api.insert_acked(ledger, stale_user, n)
    second.signal(signal.SIGSTOP)
    assert api.flush(stale_user, sync=False)["errno"] == 0
    wait_until(lambda: len(unfinished_flushes(db, stale_user)) == 1, 15, "first flush claims")
    [stale] = unfinished_flushes(db, stale_user)
    first.signal(signal.SIGSTOP)
    second.signal(signal.SIGCONT)
    wait_until(lambda: len(flush_records(db, stale_user)) >= 2, 20, "second worker takes over")
    first.signal(signal.SIGCONT)

    wait_settled(db, [busy, stale_user], timeout=40)
    check_exactly_once(db, ledger)
    stale_state = next(r for r in flush_records(db, stale_user) if r["_id"] == stale["_id"])
    assert stale_state["state"] == "abandoned"


# --- 4. Redis wiped -----------------------------------------------------------------------------


def test_redis_wiped_after_inserts_loses_nothing(
    tmp_path: pathlib.Path, mongo_url: str, llm: ScriptedLLM
) -> None:
    """A private Redis (the session's is shared), wiped after the inserts were acknowledged
    and before any flush; the reconcile pass rebuilds counters and idle clocks from MongoDB
    and the running workers flush every user."""
    with (
        servers.start_redis(tmp_path / "redis") as own_redis,
        deploy(
            tmp_path,
            mongo_url,
            own_redis.url,
            llm,
            MEMOBASE_FLUSH_WORKERS="2",
            MEMOBASE_RECONCILE_INTERVAL_SECONDS="1",
            MEMOBASE_BUFFER_FLUSH_INTERVAL="2",
            MEMOBASE_MAX_CHAT_BLOB_BUFFER_TOKEN_SIZE="100000",
        ) as deployment,
    ):
        ledger = Ledger()
        users = [deployment.api.create_user() for _ in range(3)]
        for n in range(4):
            for user in users:
                deployment.api.insert_acked(ledger, user, n)
        client = redis.Redis.from_url(own_redis.url)
        try:
            client.flushall()
        finally:
            client.close()
        assert not any(deployment.db["events"].find({"user_id": {"$in": users}}))
        wait_settled(deployment.db, users, timeout=25)
        check_exactly_once(deployment.db, ledger)


# --- 5. the model fails every request -----------------------------------------------------------


@pytest.mark.parametrize("mode", ["http_500", "timeout", "malformed_json"])
def test_model_failures_mark_chats_failed_then_a_flush_applies_them_once(
    workers: Deployment, llm: ScriptedLLM, mode: str
) -> None:
    db, api, ledger = workers.db, workers.api, Ledger()
    user = api.create_user()
    for n in range(2):
        api.insert_acked(ledger, user, n)
    llm.faults(mode=mode, count=-1, timeout_s=3)
    failed = api.flush(user, sync=True)
    assert failed["errno"] != 0, failed
    if mode != "malformed_json":  # the provider is down: UNAVAILABLE, naming the model call
        assert failed["errno"] == 503 and "LLM" in failed["errmsg"], failed

    entries = unsettled(db, user)
    assert [d["buffer"]["status"] for d in entries] == ["failed", "failed"]
    assert all(d["buffer"].get("error") for d in entries), entries
    [record] = flush_records(db, user)
    assert record["state"] == "failed" and record["error"] == entries[0]["buffer"]["error"]
    assert db["events"].count_documents({"user_id": user}) == 0
    assert not (db["profiles"].find_one({"user_id": user}) or {}).get("slots")

    llm.reset()
    assert api.flush(user, sync=True)["errno"] == 0
    check_exactly_once(db, ledger)


# --- 6. duplicate client retries ----------------------------------------------------------------


def test_retried_inserts_with_one_idempotency_key_are_applied_once(
    workers: Deployment, llm: ScriptedLLM
) -> None:
    db, api, ledger = workers.db, workers.api, Ledger()
    user = api.create_user()
    marker, key = new_marker(), f"client-retry-{uuid.uuid4().hex}"
    first = api.insert(user, marker, idempotency_key=key)
    ledger.add(user, first, marker)

    def retry(_: int) -> str:
        client = Api(workers.http_url)
        try:
            return client.insert(user, marker, idempotency_key=key)
        finally:
            client.close()

    with ThreadPoolExecutor(4) as pool:
        retried = [api.insert(user, marker, idempotency_key=key), *pool.map(retry, range(4))]
    assert set(retried) == {first}
    assert db["blobs"].count_documents({"user_id": user}) == 1
    assert api.flush(user, sync=True)["errno"] == 0
    check_exactly_once(db, ledger)


def test_a_retry_arriving_after_its_chat_was_flushed_is_not_applied_again(
    workers: Deployment, llm: ScriptedLLM
) -> None:
    """The client's first attempt was stored and flushed, but its answer was lost; the retry
    carries the same key. With `persistent_chat_blobs` off (the default) the flush deleted the
    blob, so nothing remembers the key any more."""
    db, api, ledger = workers.db, workers.api, Ledger()
    user = api.create_user()
    marker, key = new_marker(), f"late-retry-{uuid.uuid4().hex}"
    ledger.add(user, api.insert(user, marker, idempotency_key=key), marker)
    assert api.flush(user, sync=True)["errno"] == 0
    check_exactly_once(db, ledger)

    assert api.insert(user, marker, idempotency_key=key) == ledger.acked[0].blob_id
    assert api.flush(user, sync=True)["errno"] == 0
    check_exactly_once(db, ledger)


# --- a flush that died between claiming its chats and recording the claim ----------------------


def test_chats_claimed_by_a_flush_that_died_before_recording_it_are_recovered(
    workers: Deployment, llm: ScriptedLLM
) -> None:
    """`FlushService.flush_now` claims entries (idle -> processing, in `MongoBufferRepo.claim`)
    and only then inserts the flush record (`_run`); a worker killed between the two leaves
    entries processing under a flush id no record names. That state is made here directly."""
    db, api, ledger = workers.db, workers.api, Ledger()
    user = api.create_user()
    blob_id = api.insert_acked(ledger, user)
    db["blobs"].update_one(
        {"user_id": user, "blob_id": blob_id},
        {
            "$set": {"buffer.status": "processing", "buffer.flush_id": str(uuid.uuid4())},
            "$inc": {"buffer.attempts": 1},
        },
    )
    assert api.flush(user, sync=True)["errno"] == 0
    check_exactly_once(db, ledger)


# --- 7 and 8. background flushes ----------------------------------------------------------------


@pytest.fixture(scope="module")
def background(
    tmp_path_factory: pytest.TempPathFactory,
    mongo_url: str,
    redis_url: str,
    scripted_llm: ScriptedLLM,
) -> Iterator[Deployment]:
    """In-process workers, a low size threshold (flushing at once, while inserts go on) and a
    2 s idle flush."""
    with deploy(
        tmp_path_factory.mktemp("faults-background"),
        mongo_url,
        redis_url,
        scripted_llm,
        MEMOBASE_FLUSH_WORKERS="4",
        MEMOBASE_MAX_CHAT_BLOB_BUFFER_TOKEN_SIZE="150",
        MEMOBASE_FLUSH_INSERT_PAUSE_SECONDS="0",
        MEMOBASE_BUFFER_FLUSH_INTERVAL="2",
    ) as deployment:
        yield deployment


def test_idle_buffer_is_flushed_by_itself(background: Deployment, llm: ScriptedLLM) -> None:
    db, api, ledger = background.db, background.api, Ledger()
    user = api.create_user()
    api.insert_acked(ledger, user)
    assert [d["buffer"]["token_size"] < 150 for d in unsettled(db, user)] == [True]
    wait_settled(db, [user], timeout=12)
    check_exactly_once(db, ledger)


def test_concurrent_inserts_with_background_flushes_apply_each_chat_once(
    background: Deployment, llm: ScriptedLLM
) -> None:
    db, ledger = background.db, Ledger()
    shared = background.api.create_user()
    own = [background.api.create_user() for _ in range(4)]

    def client(thread: int) -> None:
        api = Api(background.http_url)
        try:
            for n in range(10):
                user = shared if n % 2 == 0 else own[thread % len(own)]
                api.insert_acked(ledger, user, thread * 10 + n)
        finally:
            api.close()

    with ThreadPoolExecutor(8) as pool:
        list(pool.map(client, range(8)))
    assert len(ledger.acked) == 80
    assert db["flushes"].count_documents({"user_id": shared}) > 0, "background flushes ran"
    for user in ledger.users():
        assert background.api.flush(user, sync=True)["errno"] == 0
    wait_settled(db, ledger.users())
    check_exactly_once(db, ledger)


# --- the storage's atomicity, which the fences rely on -------------------------------------------


def step_tokens(db: Db) -> Counter[str]:
    """Prompt tokens per step over every usage record of the database."""
    total: Counter[str] = Counter()
    for doc in db["usage"].find({}):
        for step, counts in (doc.get("steps") or {}).items():
            total[step] += int(counts.get("input_tokens", 0))
    return total


def test_usage_counts_every_token_of_concurrent_flushes(
    background: Deployment, llm: ScriptedLLM
) -> None:
    """Each flush adds its tokens with one `$inc` upsert on the project's day document; with
    several flushes committing at once, every increment must land."""
    db, api = background.db, background.api
    users = [api.create_user() for _ in range(12)]
    for n in range(2):
        for user in users:
            api.insert(user, new_marker(), n)
    wait_settled(db, users)  # nothing crossed the size threshold: this waits for idle flushes
    before = step_tokens(db)
    llm.reset()
    for n in range(2, 4):
        for user in users:
            api.insert(user, new_marker(), n)
    for user in users:  # the workers start (and end) these flushes together
        assert api.flush(user, sync=False)["errno"] == 0
    wait_settled(db, users)
    grown = step_tokens(db)
    grown.subtract(before)
    served = llm.stats()["prompt_tokens"]
    assert {step: grown[step] for step in served} == served


async def test_racing_flush_transitions_and_profile_saves_have_one_winner(
    mongo_url: str,
) -> None:
    """Racing conditional updates can both succeed on FerretDB, so the flush fence and the
    profile version are claimed by unique inserts: of concurrent attempts exactly one wins."""
    name = f"memobase_faults_{uuid.uuid4().hex[:8]}"
    db = MongoDatabase(mongo_url, name)
    flushes, profiles = MongoFlushRepo(db), MongoProfileRepo(db)
    try:
        for trial in range(10):
            record = FlushRecord(
                "p", f"u{trial}", str(uuid.uuid4()), BlobType.CHAT, FlushState.CLAIMED, (), utcnow()
            )
            await flushes.insert(record)
            targets = [FlushState.COMPUTED, FlushState.ABANDONED, FlushState.FAILED] * 2
            won = await asyncio.gather(
                *(flushes.transition(record, to, expected=(FlushState.CLAIMED,)) for to in targets)
            )
            assert sum(won) == 1, won
            base = UserProfile("p", f"u{trial}")
            saved = await asyncio.gather(*(profiles.save(base, 0) for _ in range(6)))
            assert sum(saved) == 1, saved
            current = await profiles.load("p", f"u{trial}")
            again = await asyncio.gather(
                *(profiles.save(current, current.version) for _ in range(6))
            )
            assert sum(again) == 1, again
    finally:
        await db.close()
        cleaner: MongoClient[dict[str, Any]] = MongoClient(mongo_url)
        cleaner.drop_database(name)
        cleaner.close()
