"""Long command-line operations against the test stack: bulk import and reprocess of failed
buffers, each with a progress display."""

from __future__ import annotations

import contextlib
import json
import os
import pathlib
import subprocess
import sys
import uuid
from typing import Any

from memobase import MemoBaseClient
from memobase.core.blob import BlobType
from memobase.error import ServerError
from pymongo.database import Database

from tests.conftest import ROOT_TOKEN, ScriptedLLM, Stack
from tests.test_pipeline import chat


def _cli(stack: Stack, llm: ScriptedLLM, *args: str) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "ACCESS_TOKEN": ROOT_TOKEN,
        "MEMOBASE_MONGO_URL": stack.mongo_url,
        "MEMOBASE_MONGO_DATABASE": stack.mongo_database,
        "REDIS_URL": stack.redis_url,
        "MEMOBASE_VECTOR_STORE_PATH": str(pathlib.Path(stack.log_path).parent / "cli-vectors"),
        **llm.server_env(),
    }
    return subprocess.run(
        [sys.executable, "-m", "memobase_server", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_import_chats_with_progress(
    stack: Stack, sdk: MemoBaseClient, llm: ScriptedLLM, tmp_path: pathlib.Path
) -> None:
    ada, bob = str(uuid.uuid4()), str(uuid.uuid4())
    lines: list[Any] = [
        {"user_id": ada, "messages": [{"role": "user", "content": "My name is Ada."}]},
        {"user_id": bob, "messages": [{"role": "user", "content": "I live in Rome."}]},
        {"user_id": ada, "messages": [{"role": "user", "content": "I live in Paris."}]},
    ]
    path = tmp_path / "chats.jsonl"
    path.write_text("\n".join(json.dumps(line) for line in lines) + "\n{broken\n")
    first = _cli(stack, llm, "import-chats", str(path))
    assert first.returncode == 1, first.stderr[-2000:]  # the broken line is reported
    assert "import [" in first.stderr and "4/4, 1 failed" in first.stderr
    assert len(sdk.get_user(ada, no_get=True).get_all(BlobType.chat)) == 2
    again = _cli(stack, llm, "import-chats", str(path), "--flush")  # a retried import
    assert "flush [" in again.stderr and "2/2" in again.stderr, again.stderr[-2000:]
    profile = {(p.topic, p.sub_topic): p.content for p in sdk.get_user(ada).profile()}
    assert profile == {("basic_info", "name"): "Ada", ("contact_info", "city"): "Paris"}
    assert [p.content for p in sdk.get_user(bob).profile()] == ["Rome"]
    assert len(sdk.get_user(ada).event()) == 1, "the retried import stored each chat once"


def test_reprocess_failed_buffers(
    stack: Stack, sdk: MemoBaseClient, database: Database[Any], llm: ScriptedLLM
) -> None:
    user = sdk.get_or_create_user(str(uuid.uuid4()))
    user.insert(chat("I live in Kyiv."))
    llm.faults(mode="http_500", count=-1)
    # Failed as often as automatic retries allow (flush_max_attempts, 3), so that only an
    # operator's reprocess takes it up again, not the server's reconcile pass.
    for _ in range(3):
        with contextlib.suppress(ServerError):  # the failure itself is tested elsewhere
            user.flush(sync=True)
    assert len(user.buffer(BlobType.chat, status="failed")) == 1
    llm.reset()
    result = _cli(stack, llm, "reprocess-failed")
    assert result.returncode == 0, result.stderr[-2000:]
    assert "reprocess [" in result.stderr
    assert user.buffer(BlobType.chat, status="failed") == []
    assert [p.content for p in user.profile()] == ["Kyiv"]
