"""GatewayApp end to end over a real in-process grpc.aio server with a fake UserService."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import grpc
import httpx
import pytest
import pytest_asyncio
from google.protobuf import any_pb2, json_format
from google.rpc import (  # type: ignore[import-untyped, unused-ignore]
    code_pb2,
    error_details_pb2,
    status_pb2,
)
from memobase import AsyncMemoBaseClient
from memobase.error import ServerError

from memobase_server.gen.memobase.v1 import user_pb2, user_pb2_grpc
from memobase_server.transport.gateway import GatewayApp, build_gateway
from memobase_server.transport.gateway.errors import MALFORMED_REQUEST, STATUS_DETAILS_KEY

U = "5f0c8a3e-2b1d-4c6e-9a7f-1e2d3c4b5a69"
Context = grpc.aio.ServicerContext[Any, Any]


class FakeUsers(user_pb2_grpc.UserServiceServicer):
    """Records what reached the server; user ids starting with a keyword select a failure."""

    def __init__(self) -> None:
        self.metadata: list[dict[str, str | bytes]] = []
        self.requests: list[object] = []

    def _record(self, request: object, context: Context) -> None:
        self.metadata.append(dict(context.invocation_metadata() or ()))
        self.requests.append(request)

    async def CreateUser(  # noqa: N802
        self, request: user_pb2.CreateUserRequest, context: Context
    ) -> user_pb2.CreateUserResponse:
        self._record(request, context)
        return user_pb2.CreateUserResponse(id=request.id or U)

    async def GetUser(  # noqa: N802
        self, request: user_pb2.GetUserRequest, context: Context
    ) -> user_pb2.GetUserResponse:
        self._record(request, context)
        user_id = request.user_id
        if user_id == "missing":
            await context.abort(grpc.StatusCode.NOT_FOUND, f"User {user_id} not found")
        if user_id == "denied":
            await context.abort(grpc.StatusCode.UNAUTHENTICATED, "Unauthorized access: no token")
        if user_id == "malformed":
            detail = any_pb2.Any()
            detail.Pack(error_details_pb2.ErrorInfo(reason=MALFORMED_REQUEST, domain="memobase"))
            status = status_pb2.Status(
                code=code_pb2.INVALID_ARGUMENT, message="user_id: not a UUID", details=[detail]
            )
            await context.abort(
                grpc.StatusCode.INVALID_ARGUMENT,
                "user_id: not a UUID",
                trailing_metadata=((STATUS_DETAILS_KEY, status.SerializeToString()),),
            )
        if user_id == "crash":
            raise RuntimeError("secret internal detail")
        if user_id == "slow":
            await asyncio.sleep(5)
        response = user_pb2.GetUserResponse(id=user_id)
        response.data.update({"name": "Ann", "age": 30})
        response.created_at.FromJsonString("2025-06-01T08:00:00.123456Z")
        return response

    async def UpdateUser(  # noqa: N802
        self, request: user_pb2.UpdateUserRequest, context: Context
    ) -> user_pb2.UpdateUserResponse:
        self._record(request, context)
        return user_pb2.UpdateUserResponse(id=request.user_id)

    async def DeleteUser(  # noqa: N802
        self, request: user_pb2.DeleteUserRequest, context: Context
    ) -> user_pb2.DeleteUserResponse:
        self._record(request, context)
        return user_pb2.DeleteUserResponse()


@pytest_asyncio.fixture
async def servicer() -> AsyncIterator[tuple[FakeUsers, grpc.aio.Channel]]:
    fake = FakeUsers()
    server = grpc.aio.server()
    user_pb2_grpc.add_UserServiceServicer_to_server(fake, server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    channel = grpc.aio.insecure_channel(f"127.0.0.1:{port}")
    try:
        yield fake, channel
    finally:
        await channel.close(None)
        await server.stop(None)


@pytest.fixture
def fake(servicer: tuple[FakeUsers, grpc.aio.Channel]) -> FakeUsers:
    return servicer[0]


@pytest.fixture
def channel(servicer: tuple[FakeUsers, grpc.aio.Channel]) -> grpc.aio.Channel:
    return servicer[1]


async def _metrics() -> tuple[int, bytes, str]:
    return 200, b"up 1\n", "text/plain; version=0.0.4"


@pytest_asyncio.fixture
async def client(channel: grpc.aio.Channel) -> AsyncIterator[httpx.AsyncClient]:
    app = build_gateway(channel, max_body_bytes=256, extra_routes={"/metrics": _metrics})
    async with http_client(app) as http:
        yield http


def http_client(app: GatewayApp) -> httpx.AsyncClient:
    return httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app),
        base_url="http://gateway",
        headers={"Authorization": "Bearer sk-test"},
    )


def envelope(response: httpx.Response) -> dict[str, Any]:
    assert response.headers["content-type"] == "application/json"
    body = response.json()
    assert set(body) - {"detail"} == {"data", "errno", "errmsg"}
    if "detail" in body:  # validation details ride beside the envelope on 422 answers
        assert response.status_code == 422 and isinstance(body["detail"], list)
        del body["detail"]
    assert isinstance(body["errmsg"], str)
    return dict(body)


async def test_success_envelope_headers_and_metadata(
    client: httpx.AsyncClient, fake: FakeUsers
) -> None:
    response = await client.get(f"/api/v1/users/{U}", headers={"X-Request-ID": "req-123"})
    assert response.status_code == 200
    assert envelope(response) == {
        "data": {
            "data": {"name": "Ann", "age": 30},
            "id": U,
            "created_at": "2025-06-01T08:00:00.123456Z",
            "updated_at": None,
        },
        "errno": 0,
        "errmsg": "",
    }
    assert response.headers["x-request-id"] == "req-123"
    assert float(response.headers["x-process-time"]) >= 0
    assert fake.metadata[-1]["x-request-id"] == "req-123"
    assert fake.metadata[-1]["authorization"] == "Bearer sk-test"
    assert fake.requests[-1] == user_pb2.GetUserRequest(user_id=U)


async def test_request_id_is_generated_when_absent(
    client: httpx.AsyncClient, fake: FakeUsers
) -> None:
    response = await client.delete(f"/api/v1/users/{U}")
    assert envelope(response) == {"data": None, "errno": 0, "errmsg": ""}
    generated = response.headers["x-request-id"]
    assert len(generated) == 32
    int(generated, 16)
    assert fake.metadata[-1]["x-request-id"] == generated


async def test_business_error_is_http_200_with_errno(client: httpx.AsyncClient) -> None:
    response = await client.get("/api/v1/users/missing")
    assert response.status_code == 200
    assert envelope(response) == {"data": None, "errno": 404, "errmsg": "User missing not found"}


async def test_unknown_route_is_404_and_wrong_method_is_405(client: httpx.AsyncClient) -> None:
    response = await client.get("/api/v1/nothing/here")
    assert response.status_code == 404
    assert envelope(response)["errno"] == 404
    response = await client.patch(f"/api/v1/users/{U}", json={})
    assert response.status_code == 405
    assert envelope(response)["errno"] == 405
    assert response.headers["allow"] == "DELETE, GET, PUT"


async def test_decode_errors_are_422(client: httpx.AsyncClient, fake: FakeUsers) -> None:
    response = await client.post(
        "/api/v1/users", content=b"{not json", headers={"content-type": "application/json"}
    )
    assert response.status_code == 422
    body = envelope(response)
    assert body["errno"] == 422
    assert "body" in body["errmsg"]
    response = await client.put(f"/api/v1/users/{U}", json=[1, 2])
    assert response.status_code == 422
    assert envelope(response)["errmsg"] == (
        "Invalid request: data: expected an object, got an array"
    )
    assert fake.requests == []


async def test_bodies_over_the_limit_are_413(client: httpx.AsyncClient, fake: FakeUsers) -> None:
    big = {"data": {"text": "x" * 300}}
    response = await client.post("/api/v1/users", json=big)
    assert response.status_code == 413
    assert envelope(response)["errno"] == 413

    async def chunks() -> AsyncIterator[bytes]:
        for _ in range(10):
            yield b" " * 40

    response = await client.post("/api/v1/users", content=chunks())
    assert response.status_code == 413
    assert fake.requests == []


async def test_unauthenticated_is_401(client: httpx.AsyncClient) -> None:
    response = await client.get("/api/v1/users/denied")
    assert response.status_code == 401
    assert envelope(response) == {
        "data": None,
        "errno": 401,
        "errmsg": "Unauthorized access to /api/v1/users/denied. Unauthorized access: no token",
    }


async def test_malformed_request_error_info_is_422(client: httpx.AsyncClient) -> None:
    response = await client.get("/api/v1/users/malformed")
    assert response.status_code == 422
    assert envelope(response) == {"data": None, "errno": 422, "errmsg": "user_id: not a UUID"}


async def test_internal_errors_are_generic(client: httpx.AsyncClient) -> None:
    response = await client.get("/api/v1/users/crash", headers={"X-Request-ID": "r-9"})
    assert response.status_code == 200
    body = envelope(response)
    assert body["errno"] == 500
    assert body["errmsg"] == "Internal error; request id r-9"


async def test_unregistered_service_is_501(client: httpx.AsyncClient) -> None:
    response = await client.get("/api/v1/healthcheck")
    assert response.status_code == 501
    assert envelope(response)["errno"] == 501


async def test_deadline_is_applied(channel: grpc.aio.Channel) -> None:
    async with http_client(build_gateway(channel, deadline_s=0.2)) as http:
        response = await http.get("/api/v1/users/slow")
    assert response.status_code == 200
    assert envelope(response)["errno"] == 504


async def test_body_star_reaches_the_servicer(client: httpx.AsyncClient, fake: FakeUsers) -> None:
    response = await client.post("/api/v1/users", json={"data": {"k": [1]}, "id": U})
    assert envelope(response) == {"data": {"id": U}, "errno": 0, "errmsg": ""}
    request = fake.requests[-1]
    assert isinstance(request, user_pb2.CreateUserRequest)
    assert request.id == U
    assert json_format.MessageToDict(request.data) == {"k": [1]}


async def test_query_and_path_decode_errors_are_422(client: httpx.AsyncClient) -> None:
    response = await client.get(f"/api/v1/users/blobs/{U}/chat?page=abc&&page_size=2")
    assert response.status_code == 422
    assert envelope(response)["errmsg"] == "Invalid request: page: invalid integer 'abc'"
    response = await client.get(f"/api/v1/users/blobs/{U}/video")
    assert response.status_code == 422
    assert "blob_type" in envelope(response)["errmsg"]


async def test_extra_routes(client: httpx.AsyncClient) -> None:
    response = await client.get("/metrics")
    assert response.status_code == 200
    assert response.text == "up 1\n"
    assert response.headers["content-type"] == "text/plain; version=0.0.4"
    response = await client.post("/metrics")
    assert response.status_code == 405


async def test_sdk_against_the_gateway(channel: grpc.aio.Channel, fake: FakeUsers) -> None:
    sdk = AsyncMemoBaseClient(api_key="sk-test", project_url="http://gateway")
    await sdk.client.aclose()
    app = build_gateway(channel)
    sdk._client = httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app),
        base_url=sdk.base_url,
        headers={"Authorization": "Bearer sk-test"},
    )
    try:
        user = await sdk.get_or_create_user("missing")
        assert user.user_id == "missing"
        assert [type(r).__name__ for r in fake.requests[-2:]] == [
            "GetUserRequest",
            "CreateUserRequest",
        ]
        assert await sdk.update_user(U, {"a": 1}) == U
        update = fake.requests[-1]
        assert isinstance(update, user_pb2.UpdateUserRequest)
        assert dict(update.data) == {"data": {"a": 1}}
        assert await sdk.delete_user(U) is True
        assert await sdk.ping() is False
        with pytest.raises(ServerError):
            await sdk.get_user("missing")
    finally:
        await sdk.client.aclose()


async def _drive(
    app: GatewayApp, scope: dict[str, Any], incoming: list[dict[str, Any]]
) -> list[dict[str, Any]]:
    sent: list[dict[str, Any]] = []
    queue = list(incoming)

    async def receive() -> dict[str, Any]:
        return queue.pop(0)

    async def send(message: Any) -> None:
        sent.append(dict(message))

    call: Callable[..., Awaitable[None]] = app
    await call(scope, receive, send)
    return sent


async def test_lifespan_unknown_scopes_and_disconnects(channel: grpc.aio.Channel) -> None:
    app = build_gateway(channel)
    sent = await _drive(
        app,
        {"type": "lifespan"},
        [{"type": "lifespan.startup"}, {"type": "lifespan.shutdown"}],
    )
    assert sent == [{"type": "lifespan.startup.complete"}, {"type": "lifespan.shutdown.complete"}]
    assert await _drive(app, {"type": "websocket"}, []) == []
    scope = {
        "type": "http",
        "method": "POST",
        "path": "/api/v1/users",
        "raw_path": b"/api/v1/users",
        "query_string": b"",
        "headers": [],
    }
    assert await _drive(app, scope, [{"type": "http.disconnect"}]) == []
    sent = await _drive(
        app, scope, [{"type": "http.request", "body": json.dumps({"id": U}).encode()}]
    )
    assert sent[0]["status"] == 200
    assert json.loads(sent[1]["body"]) == {"data": {"id": U}, "errno": 0, "errmsg": ""}
