"""Recovery without help, on the shipped defaults (lease, reclaim and reconcile times as in
config.yaml): after the server is killed in the middle of a flush, or Redis is wiped while one
runs, every acknowledged chat is applied once within 30 s of the failure, with no flush
requested by any client. Chats are made due at once (a tiny size threshold), so that nothing
waits for the idle timer."""

from __future__ import annotations

import pathlib
import time

import redis

from tests import servers
from tests.conftest import ScriptedLLM, start_server, stop_server
from tests.test_faults import (
    Ledger,
    check_exactly_once,
    deploy,
    unfinished_flushes,
    wait_settled,
    wait_until,
)

RECOVERY_S = 30.0
DUE_AT_ONCE = {"MEMOBASE_MAX_CHAT_BLOB_BUFFER_TOKEN_SIZE": "20"}


def test_a_server_killed_mid_flush_is_caught_up_by_its_successor_within_30_s(
    tmp_path: pathlib.Path, mongo_url: str, redis_url: str, llm: ScriptedLLM
) -> None:
    with deploy(
        tmp_path, mongo_url, redis_url, llm, **DUE_AT_ONCE, MEMOBASE_CRASH_POINTS="after_claim"
    ) as doomed:
        ledger = Ledger()
        users = [doomed.api.create_user() for _ in range(2)]
        doomed.api.insert_acked(ledger, users[0], 0)  # its background flush kills the server
        assert doomed.process.wait(timeout=20) == 137
        died_at = time.monotonic()
        assert unfinished_flushes(doomed.db, users[0])

        env = {k: v for k, v in doomed.env.items() if k != "MEMOBASE_CRASH_POINTS"}
        process, _, _, _ = start_server(tmp_path, mongo_url, redis_url, doomed.database, **env)
        try:
            wait_settled(doomed.db, users, timeout=RECOVERY_S - (time.monotonic() - died_at))
            check_exactly_once(doomed.db, ledger)
        finally:
            stop_server(process)


def test_a_redis_wiped_mid_flush_loses_no_chat_and_needs_no_client(
    tmp_path: pathlib.Path, mongo_url: str, llm: ScriptedLLM
) -> None:
    with (
        servers.start_redis(tmp_path / "redis") as own_redis,
        deploy(tmp_path, mongo_url, own_redis.url, llm, **DUE_AT_ONCE) as deployment,
    ):
        api, db, ledger = deployment.api, deployment.db, Ledger()
        first, second = api.create_user(), api.create_user()
        llm.faults(mode="none", latency_ms=2000, steps=["extract"])
        for n in range(2):
            api.insert_acked(ledger, first, n)
        wait_until(lambda: bool(unfinished_flushes(db, first)), 15, "a flush is running")
        client = redis.Redis.from_url(own_redis.url)
        try:
            client.flushall()
        finally:
            client.close()
        wiped_at = time.monotonic()
        llm.faults(mode="none")
        api.insert_acked(ledger, first, 2)
        for n in range(2):
            api.insert_acked(ledger, second, n)
        wait_settled(db, [first, second], timeout=RECOVERY_S - (time.monotonic() - wiped_at))
        check_exactly_once(db, ledger)
