"""REST gateway: HTTP/JSON → gRPC transcoding driven by the `google.api.http` annotations."""

from __future__ import annotations

from collections.abc import Mapping

import grpc
from google.protobuf.descriptor import ServiceDescriptor

from memobase_server.gen.memobase.v1 import (
    blob_pb2,
    event_pb2,
    profile_pb2,
    project_pb2,
    user_pb2,
)
from memobase_server.observability.hooks import NO_OBSERVER, GatewayObserver

from .app import DEFAULT_DEADLINE_S, DEFAULT_MAX_BODY_BYTES, ExtraRoute, GatewayApp
from .invokers import ChannelInvoker, Invoker, RpcFailure
from .routes import Route, Router

__all__ = [
    "ChannelInvoker",
    "ExtraRoute",
    "GatewayApp",
    "Invoker",
    "Route",
    "Router",
    "RpcFailure",
    "build_gateway",
    "service_descriptors",
]


def service_descriptors() -> list[ServiceDescriptor]:
    """The five Memobase services exposed over REST."""
    return [
        user_pb2.DESCRIPTOR.services_by_name["UserService"],
        blob_pb2.DESCRIPTOR.services_by_name["BlobService"],
        profile_pb2.DESCRIPTOR.services_by_name["ProfileService"],
        event_pb2.DESCRIPTOR.services_by_name["EventService"],
        project_pb2.DESCRIPTOR.services_by_name["ProjectService"],
    ]


def build_gateway(
    channel_or_invoker: grpc.aio.Channel | Invoker,
    *,
    deadline_s: float = DEFAULT_DEADLINE_S,
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
    extra_routes: Mapping[str, ExtraRoute] | None = None,
    observer: GatewayObserver = NO_OBSERVER,
) -> GatewayApp:
    """The gateway for the five Memobase services, calling them over a channel or in process."""
    invoker = (
        ChannelInvoker(channel_or_invoker)
        if isinstance(channel_or_invoker, grpc.aio.Channel)
        else channel_or_invoker
    )
    return GatewayApp(
        Router.from_services(service_descriptors()),
        invoker,
        deadline_s=deadline_s,
        max_body_bytes=max_body_bytes,
        extra_routes=extra_routes,
        observer=observer,
    )
