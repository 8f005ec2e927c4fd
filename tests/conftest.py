"""The test stack: real FerretDB (or the MongoDB in MEMOBASE_MONGO_URL), a real redis-server
(or REDIS_URL), and the memobase server itself as a child process on free ports, started once
per session. Tests talk to it over gRPC and HTTP like any client."""

from __future__ import annotations

import asyncio
import os
import pathlib
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass
from typing import Any

import grpc
import httpx
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from memobase import MemoBaseClient
from pymongo import AsyncMongoClient, MongoClient
from pymongo.database import Database

from memobase_server.gen.memobase.v1 import (
    blob_pb2_grpc,
    profile_pb2_grpc,
    project_pb2,
    project_pb2_grpc,
    user_pb2_grpc,
)
from memobase_server.storage.mongo.database import MongoDatabase
from tests import servers

ROOT_TOKEN = "test-root-token"
REPO_ROOT = pathlib.Path(__file__).resolve().parent.parent


async def eventually(check: Callable[[], Awaitable[bool]], seconds: float = 30.0) -> None:
    """Waits until `check()` holds (polling), failing after `seconds`."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if await check():
            return
        await asyncio.sleep(0.2)
    raise AssertionError("condition not reached in time")


@dataclass
class Stack:
    grpc_target: str
    http_url: str
    mongo_url: str
    redis_url: str
    mongo_database: str
    root_token: str
    process: subprocess.Popen[bytes]
    log_path: pathlib.Path


@dataclass
class Stubs:
    """gRPC stubs on one channel, with the caller's token attached to every call."""

    channel: grpc.Channel
    token: str

    @property
    def metadata(self) -> tuple[tuple[str, str], ...]:
        return (("authorization", f"Bearer {self.token}"),)

    @property
    def users(self) -> user_pb2_grpc.UserServiceStub:
        return user_pb2_grpc.UserServiceStub(self.channel)

    @property
    def blobs(self) -> blob_pb2_grpc.BlobServiceStub:
        return blob_pb2_grpc.BlobServiceStub(self.channel)

    @property
    def profiles(self) -> profile_pb2_grpc.ProfileServiceStub:
        return profile_pb2_grpc.ProfileServiceStub(self.channel)

    @property
    def projects(self) -> project_pb2_grpc.ProjectServiceStub:
        return project_pb2_grpc.ProjectServiceStub(self.channel)


def wait_serving(target: str, process: subprocess.Popen[bytes], timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    with grpc.insecure_channel(target) as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        while time.monotonic() < deadline:
            if process.poll() is not None:
                raise RuntimeError(f"server exited with code {process.returncode}")
            try:
                reply = stub.Check(health_pb2.HealthCheckRequest(), timeout=1)
                if reply.status == health_pb2.HealthCheckResponse.SERVING:
                    return
            except grpc.RpcError:
                pass
            time.sleep(0.1)
    raise TimeoutError("server did not become healthy")


def start_server(
    workdir: pathlib.Path, mongo_url: str, redis_url: str, database: str, **env: str
) -> tuple[subprocess.Popen[bytes], int, int, pathlib.Path]:
    return start_server_with(workdir, mongo_url, redis_url, database, env)


def start_server_with(
    workdir: pathlib.Path,
    mongo_url: str,
    redis_url: str,
    database: str,
    env: dict[str, str],
    *,
    start_timeout: float = 60,
) -> tuple[subprocess.Popen[bytes], int, int, pathlib.Path]:
    """`start_server`, with settings as a dict and a start-up time limit (a big database
    takes longer to open)."""
    grpc_port, http_port = servers.free_port(), servers.free_port()
    log_path = workdir / f"server-{grpc_port}.log"
    child_env = {
        **os.environ,
        "ACCESS_TOKEN": ROOT_TOKEN,
        "MEMOBASE_MONGO_URL": mongo_url,
        "MEMOBASE_MONGO_DATABASE": database,
        "REDIS_URL": redis_url,
        "MEMOBASE_GRPC_PORT": str(grpc_port),
        "MEMOBASE_HTTP_PORT": str(http_port),
        "MEMOBASE_HOST": "127.0.0.1",
        "LOG_FORMAT": "json",
        "MEMOBASE_CONFIG": str(workdir / "config.yaml"),
        **env,
    }
    (workdir / "config.yaml").touch()
    with log_path.open("ab") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "memobase_server", "serve"],
            env=child_env,
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=workdir,
        )
    try:
        wait_serving(f"127.0.0.1:{grpc_port}", process, start_timeout)
    except Exception:
        process.kill()
        raise RuntimeError(f"server failed to start:\n{log_path.read_text()[-4000:]}") from None
    return process, grpc_port, http_port, log_path


def stop_server(process: subprocess.Popen[bytes]) -> int:
    process.send_signal(signal.SIGTERM)
    try:
        return process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        process.kill()
        return process.wait()


@pytest.fixture(scope="session")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> pathlib.Path:
    return tmp_path_factory.mktemp("stack")


@pytest.fixture(scope="session")
def mongo_url(workdir: pathlib.Path) -> Iterator[str]:
    given = os.environ.get("MEMOBASE_MONGO_URL")
    if given:
        yield given
        return
    server = servers.start_ferretdb(workdir)
    yield server.url
    server.stop()


@pytest.fixture(scope="session")
def redis_url(workdir: pathlib.Path) -> Iterator[str]:
    given = os.environ.get("REDIS_URL")
    if given:
        yield given
        return
    server = servers.start_redis(workdir)
    yield server.url
    server.stop()


@dataclass
class ScriptedLLM:
    """The scripted OpenAI-compatible model server, running as a child process."""

    base_url: str
    process: subprocess.Popen[bytes]

    def faults(self, **fault: Any) -> None:
        httpx.post(f"{self.base_url}/_scripted/faults", json=fault, timeout=10).raise_for_status()

    def reset(self) -> None:
        httpx.delete(f"{self.base_url}/_scripted/faults", timeout=10).raise_for_status()
        httpx.delete(f"{self.base_url}/_scripted/stats", timeout=10).raise_for_status()

    def stats(self) -> dict[str, Any]:
        reply = httpx.get(f"{self.base_url}/_scripted/stats", timeout=10)
        reply.raise_for_status()
        stats: dict[str, Any] = reply.json()
        return stats

    def server_env(self) -> dict[str, str]:
        """Points a memobase server at this model for chat and embeddings."""
        return {
            "MEMOBASE_LLM_BASE_URL": f"{self.base_url}/v1",
            "MEMOBASE_LLM_API_KEY": "scripted",
            "MEMOBASE_LLM_MAX_RETRIES": "1",
            "MEMOBASE_LLM_TIMEOUT_SECONDS": "5",
            "MEMOBASE_EMBEDDING_PROVIDER": "openai",
            "MEMOBASE_EMBEDDING_BASE_URL": f"{self.base_url}/v1",
            "MEMOBASE_EMBEDDING_API_KEY": "scripted",
            "MEMOBASE_EMBEDDING_MODEL": "text-embedding-3-small",
            "MEMOBASE_EMBEDDING_DIM": "256",
            "MEMOBASE_EVENT_TAGS": '["emotion", {"name": "topic", "description": "its subject"}]',
        }


@pytest.fixture(scope="session")
def scripted_llm(workdir: pathlib.Path) -> Iterator[ScriptedLLM]:
    port = servers.free_port()
    with (workdir / "scripted-llm.log").open("ab") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "memobase_server", "scripted-llm", "--port", str(port)],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    servers.wait_for_port("127.0.0.1", port, 30, process=process)
    yield ScriptedLLM(f"http://127.0.0.1:{port}", process)
    stop_server(process)


@pytest.fixture
def llm(scripted_llm: ScriptedLLM) -> Iterator[ScriptedLLM]:
    """The scripted model, reset before and after the test (faults are global)."""
    scripted_llm.reset()
    yield scripted_llm
    scripted_llm.reset()


@pytest.fixture(scope="session")
def stack(
    workdir: pathlib.Path, mongo_url: str, redis_url: str, scripted_llm: ScriptedLLM
) -> Iterator[Stack]:
    database = f"memobase_test_{uuid.uuid4().hex[:8]}"
    process, grpc_port, http_port, log_path = start_server(
        workdir, mongo_url, redis_url, database, **scripted_llm.server_env()
    )
    yield Stack(
        grpc_target=f"127.0.0.1:{grpc_port}",
        http_url=f"http://127.0.0.1:{http_port}",
        mongo_url=mongo_url,
        redis_url=redis_url,
        mongo_database=database,
        root_token=ROOT_TOKEN,
        process=process,
        log_path=log_path,
    )
    if process.poll() is None:
        stop_server(process)


@pytest.fixture(scope="session")
def database(stack: Stack) -> Iterator[Database[dict[str, Any]]]:
    """Direct access to the server's database, to check what was (not) stored."""
    client: MongoClient[dict[str, Any]] = MongoClient(stack.mongo_url, tz_aware=True)
    yield client[stack.mongo_database]
    client.close()


@pytest.fixture(scope="session")
def channel(stack: Stack) -> Iterator[grpc.Channel]:
    with grpc.insecure_channel(stack.grpc_target) as chan:
        yield chan


@pytest.fixture(scope="session")
def root(stack: Stack, channel: grpc.Channel) -> Stubs:
    return Stubs(channel, stack.root_token)


@pytest.fixture
async def mongo_db(mongo_url: str) -> AsyncIterator[MongoDatabase]:
    """A fresh database of its own on the default stack, through the server's adapter."""
    name = f"memobase_unit_{uuid.uuid4().hex[:8]}"
    database = MongoDatabase(mongo_url, name)
    yield database
    await database.close()
    cleaner: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(mongo_url)
    await cleaner.drop_database(name)
    await cleaner.close()


@pytest.fixture(scope="session")
def sdk(stack: Stack) -> Iterator[MemoBaseClient]:
    client = MemoBaseClient(api_key=stack.root_token, project_url=stack.http_url)
    yield client
    client.client.close()


def create_project(root: Stubs) -> str:
    """A new project's secret key."""
    reply = root.projects.CreateProject(
        project_pb2.CreateProjectRequest(), metadata=root.metadata, timeout=10
    )
    key: str = reply.secret_key
    return key


@pytest.fixture
def project_key(root: Stubs) -> str:
    return create_project(root)


@pytest.fixture
def project(channel: grpc.Channel, project_key: str) -> Stubs:
    return Stubs(channel, project_key)


def start_worker(
    workdir: pathlib.Path,
    mongo_url: str,
    redis_url: str,
    database: str,
    *,
    name: str = "worker",
    **env: str,
) -> tuple[subprocess.Popen[bytes], pathlib.Path]:
    """A `memobase-server worker` process (flush workers and the scheduler, no servers) with
    the environment `start_server` gives a server; returns once it logged that it is ready
    (an INFO line: keep MEMOBASE_LOG_LEVEL at INFO or below)."""
    log_path = workdir / f"{name}-{uuid.uuid4().hex[:6]}.log"
    child_env = {
        **os.environ,
        "ACCESS_TOKEN": ROOT_TOKEN,
        "MEMOBASE_MONGO_URL": mongo_url,
        "MEMOBASE_MONGO_DATABASE": database,
        "REDIS_URL": redis_url,
        "LOG_FORMAT": "json",
        "MEMOBASE_CONFIG": str(workdir / "config.yaml"),
        **env,
    }
    (workdir / "config.yaml").touch()
    with log_path.open("ab") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "memobase_server", "worker"],
            env=child_env,
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=workdir,
        )
    deadline = time.monotonic() + 60
    while "flush worker ready" not in log_path.read_text(errors="replace"):
        if process.poll() is not None or time.monotonic() > deadline:
            if process.poll() is None:
                process.kill()
                process.wait()
            raise RuntimeError(f"worker failed to start:\n{log_path.read_text()[-4000:]}")
        time.sleep(0.05)
    return process, log_path
