"""The server process: health, reflection, request ids, start-up checks, graceful shutdown."""

from __future__ import annotations

import json
import os
import pathlib
import socket
import subprocess
import sys
import uuid

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc
from memobase import ChatBlob, MemoBaseClient
from memobase.core.blob import BlobType
from memobase.error import ServerError

from memobase_server.gen.memobase.v1 import user_pb2
from tests import servers
from tests.conftest import ROOT_TOKEN, Stack, Stubs, start_server, stop_server

FIVE_SERVICES = {
    "memobase.v1.UserService",
    "memobase.v1.BlobService",
    "memobase.v1.ProfileService",
    "memobase.v1.EventService",
    "memobase.v1.ProjectService",
}


def test_health_serving_for_every_service(channel: grpc.Channel) -> None:
    stub = health_pb2_grpc.HealthStub(channel)
    for service in ("", *FIVE_SERVICES):
        reply = stub.Check(health_pb2.HealthCheckRequest(service=service))
        assert reply.status == health_pb2.HealthCheckResponse.SERVING


def test_reflection_lists_the_five_services(channel: grpc.Channel) -> None:
    stub = reflection_pb2_grpc.ServerReflectionStub(channel)
    request = reflection_pb2.ServerReflectionRequest(list_services="")
    reply = next(iter(stub.ServerReflectionInfo(iter([request]))))
    names = {s.name for s in reply.list_services_response.service}
    assert names >= FIVE_SERVICES | {"grpc.health.v1.Health"}


def test_request_id_reaches_the_logs(stack: Stack, root: Stubs) -> None:
    request_id = uuid.uuid4().hex
    root.users.CreateUser(
        user_pb2.CreateUserRequest(),
        metadata=(*root.metadata, ("x-request-id", request_id)),
    )
    lines = [
        json.loads(line) for line in stack.log_path.read_text().splitlines() if line.startswith("{")
    ]
    mine = [line for line in lines if line.get("request_id") == request_id]
    assert mine and mine[0]["rpc"] == "/memobase.v1.UserService/CreateUser"
    assert mine[0]["code"] == "OK"


def _run_cli(env: dict[str, str], tmp_path: pathlib.Path) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if k != "ACCESS_TOKEN"}
    return subprocess.run(
        [sys.executable, "-m", "memobase_server", "serve"],
        env={**clean, **env},
        cwd=tmp_path,
        capture_output=True,
        check=False,
        text=True,
        timeout=60,
    )


def test_start_up_refuses_to_run_without_a_root_token(tmp_path: pathlib.Path) -> None:
    result = _run_cli({}, tmp_path)
    assert result.returncode == 2
    assert "access_token" in result.stderr and "ACCESS_TOKEN" in result.stderr


def test_a_bad_config_value_names_the_field(tmp_path: pathlib.Path) -> None:
    result = _run_cli({"ACCESS_TOKEN": "t", "MEMOBASE_GRPC_PORT": "many"}, tmp_path)
    assert result.returncode == 2
    assert "grpc_port" in result.stderr and "MEMOBASE_GRPC_PORT" in result.stderr
    (tmp_path / "config.yaml").write_text("max_profile_subtopics: -3\n")
    result = _run_cli({"ACCESS_TOKEN": "t"}, tmp_path)
    assert result.returncode == 2 and "max_profile_subtopics" in result.stderr


def test_sigterm_drains_and_exits_cleanly(
    workdir: pathlib.Path, mongo_url: str, redis_url: str, tmp_path: pathlib.Path
) -> None:
    process, grpc_port, _, log_path = start_server(
        tmp_path, mongo_url, redis_url, f"memobase_test_{uuid.uuid4().hex[:8]}"
    )
    with grpc.insecure_channel(f"127.0.0.1:{grpc_port}") as channel:
        stubs = Stubs(channel, "test-root-token")
        stubs.users.CreateUser(user_pb2.CreateUserRequest(), metadata=stubs.metadata)
    assert stop_server(process) == 0
    assert "stopped" in log_path.read_text()


def test_gateway_runs_as_a_separate_process(
    mongo_url: str, redis_url: str, tmp_path: pathlib.Path
) -> None:
    process, grpc_port, unused_http_port, _ = start_server(
        tmp_path,
        mongo_url,
        redis_url,
        f"memobase_test_{uuid.uuid4().hex[:8]}",
        MEMOBASE_GATEWAY="off",
    )
    http_port = servers.free_port()
    gateway = subprocess.Popen(
        [sys.executable, "-m", "memobase_server", "gateway"],
        env={
            **os.environ,
            "MEMOBASE_GATEWAY_GRPC_TARGET": f"127.0.0.1:{grpc_port}",
            "MEMOBASE_HTTP_PORT": str(http_port),
            "MEMOBASE_CONFIG": str(tmp_path / "config.yaml"),
        },
        cwd=tmp_path,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        servers.wait_for_port("127.0.0.1", http_port, 30, process=gateway)
        client = MemoBaseClient(api_key=ROOT_TOKEN, project_url=f"http://127.0.0.1:{http_port}")
        assert client.ping()
        user_id = client.add_user({"via": "gateway"})
        assert client.get_user(user_id).fields["data"] == {"via": "gateway"}
        with pytest.raises(OSError):
            socket.create_connection(("127.0.0.1", unused_http_port), timeout=1).close()
    finally:
        assert stop_server(gateway) == 0
        assert stop_server(process) == 0


def test_without_an_llm_chats_are_kept_and_flush_says_why(
    mongo_url: str, redis_url: str, tmp_path: pathlib.Path
) -> None:
    process, _, http_port, _ = start_server(
        tmp_path, mongo_url, redis_url, f"memobase_test_{uuid.uuid4().hex[:8]}"
    )
    try:
        client = MemoBaseClient(api_key=ROOT_TOKEN, project_url=f"http://127.0.0.1:{http_port}")
        user = client.get_or_create_user(str(uuid.uuid4()))
        blob_id = user.insert(ChatBlob(messages=[{"role": "user", "content": "I live in Rome"}]))
        for sync in (True, False):
            with pytest.raises(ServerError, match="LLM not configured"):
                user.flush(sync=sync)
        assert user.get_all(BlobType.chat) == [blob_id]
        assert len(user.buffer(BlobType.chat)) == 1
    finally:
        assert stop_server(process) == 0


def test_mcp_subcommand_is_the_mcp_server() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "memobase_server", "mcp", "--help"],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    assert result.returncode == 0 and "memobase-mcp" in result.stdout
