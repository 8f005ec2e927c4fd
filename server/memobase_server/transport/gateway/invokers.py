"""How the gateway reaches the gRPC methods: over a channel (a gateway in its own process), or
in process (the default: the same handlers and interceptors, without serialising messages or
crossing a socket). Both report failures as an `RpcFailure` with the gRPC status."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, TypeAlias

import grpc
from google.protobuf.message import Message

from .routes import Route

Metadata: TypeAlias = tuple[tuple[str, str], ...]


@dataclass
class RpcFailure(Exception):
    code: grpc.StatusCode
    details: str | None
    trailing_metadata: Sequence[tuple[str, str | bytes]] = field(default_factory=tuple)


class Invoker(Protocol):
    async def __call__(
        self, route: Route, request: Message, *, deadline_s: float, metadata: Metadata
    ) -> Message:
        """The response, or RpcFailure."""


class ChannelInvoker:
    def __init__(self, channel: grpc.aio.Channel) -> None:
        self._channel = channel
        self._callables: dict[str, grpc.aio.UnaryUnaryMultiCallable[Message, Message]] = {}

    async def __call__(
        self, route: Route, request: Message, *, deadline_s: float, metadata: Metadata
    ) -> Message:
        call = self._callables.get(route.grpc_method)
        if call is None:
            call = self._channel.unary_unary(
                route.grpc_method,
                request_serializer=route.request_class.SerializeToString,
                response_deserializer=route.response_class.FromString,
            )
            self._callables[route.grpc_method] = call
        try:
            response: Message = await call(request, timeout=deadline_s, metadata=metadata)
        except grpc.aio.AioRpcError as error:
            items: Any = error.trailing_metadata() or ()
            trailing = tuple((key, value) for key, value in items)
            raise RpcFailure(error.code(), error.details(), trailing) from None
        return response
