"""The grpc.aio server: our five services, standard health, reflection and interceptors."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from typing import Any

from grpc import aio
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_health.v1._async import HealthServicer
from grpc_reflection.v1alpha import reflection

from memobase_server.gen.memobase.v1 import (
    blob_pb2,
    blob_pb2_grpc,
    event_pb2,
    event_pb2_grpc,
    profile_pb2,
    profile_pb2_grpc,
    project_pb2,
    project_pb2_grpc,
    user_pb2,
    user_pb2_grpc,
)
from memobase_server.observability.hooks import NO_OBSERVER, RpcObserver
from memobase_server.services.auth import Authenticator
from memobase_server.transport.grpc.interceptors import AuthInterceptor, CallInterceptor

SERVICE_NAMES = tuple(
    module.DESCRIPTOR.services_by_name[name].full_name
    for module, name in (
        (user_pb2, "UserService"),
        (blob_pb2, "BlobService"),
        (profile_pb2, "ProfileService"),
        (event_pb2, "EventService"),
        (project_pb2, "ProjectService"),
    )
)
PUBLIC_METHODS = ("/memobase.v1.ProjectService/Healthcheck",)


@dataclass(frozen=True)
class Servicers:
    users: user_pb2_grpc.UserServiceServicer
    blobs: blob_pb2_grpc.BlobServiceServicer
    profiles: profile_pb2_grpc.ProfileServiceServicer
    events: event_pb2_grpc.EventServiceServicer
    projects: project_pb2_grpc.ProjectServiceServicer


class GrpcServer:
    def __init__(
        self,
        servicers: Servicers,
        authenticator: Authenticator,
        *,
        max_message_bytes: int,
        max_concurrent_rpcs: int | None = None,
        rpc_observer: RpcObserver = NO_OBSERVER,
    ) -> None:
        options = [
            ("grpc.max_receive_message_length", max_message_bytes),
            ("grpc.max_send_message_length", max_message_bytes),
            ("grpc.server.max_pending_requests", 10_000),
        ]
        self.interceptors = [
            CallInterceptor(rpc_observer),
            AuthInterceptor(authenticator, PUBLIC_METHODS),
        ]
        self.server = aio.server(
            interceptors=self.interceptors,
            options=options,
            maximum_concurrent_rpcs=max_concurrent_rpcs,
        )
        # Each registers one servicer on a server: ours, or the REST gateway's in-process path.
        self.registrations: list[Callable[[Any], None]] = [
            partial(user_pb2_grpc.add_UserServiceServicer_to_server, servicers.users),
            partial(blob_pb2_grpc.add_BlobServiceServicer_to_server, servicers.blobs),
            partial(profile_pb2_grpc.add_ProfileServiceServicer_to_server, servicers.profiles),
            partial(event_pb2_grpc.add_EventServiceServicer_to_server, servicers.events),
            partial(project_pb2_grpc.add_ProjectServiceServicer_to_server, servicers.projects),
        ]
        for register in self.registrations:
            register(self.server)
        self.health = HealthServicer()
        health_pb2_grpc.add_HealthServicer_to_server(self.health, self.server)
        reflection.enable_server_reflection(
            (*SERVICE_NAMES, health.SERVICE_NAME, reflection.SERVICE_NAME), self.server
        )
        self.port = 0

    async def start(self, host: str, port: int) -> int:
        self.port = self.server.add_insecure_port(f"{host}:{port}")
        if self.port == 0:
            raise OSError(f"cannot listen for gRPC on {host}:{port}")
        await self.server.start()
        for name in ("", *SERVICE_NAMES):
            await self.health.set(name, health_pb2.HealthCheckResponse.SERVING)
        return self.port

    async def stop(self, grace_s: float) -> None:
        """Health turns NOT_SERVING, new calls are refused, in-flight calls get `grace_s`."""
        await self.health.enter_graceful_shutdown()
        await self.server.stop(grace_s)
