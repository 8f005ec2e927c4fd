"""Calls this process's gRPC handlers directly: the REST gateway's fast path.

The handlers are captured from the generated `add_*Servicer_to_server` functions and wrapped by
the same server interceptors, once per method. A call gets a small servicer context offering
what those interceptors and servicers use (metadata, deadline, abort)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

import grpc
from google.protobuf.message import Message

from memobase_server.transport.gateway.invokers import Metadata, RpcFailure
from memobase_server.transport.gateway.routes import Route


class _Details(NamedTuple):
    method: str
    invocation_metadata: Metadata


class _HandlerRecorder:
    """Stands in for a grpc server while the generated code registers a servicer."""

    def __init__(self) -> None:
        self.handlers: dict[str, grpc.RpcMethodHandler[Any, Any]] = {}

    def add_generic_rpc_handlers(self, handlers: Sequence[object]) -> None:
        del handlers  # the registered handlers below carry the same methods

    def add_registered_method_handlers(
        self, service: str, handlers: dict[str, grpc.RpcMethodHandler[Any, Any]]
    ) -> None:
        for name, handler in handlers.items():
            self.handlers[f"/{service}/{name}"] = handler


class _Context:
    def __init__(self, metadata: Metadata, timeout: float) -> None:
        self._metadata = metadata
        self._deadline = asyncio.get_running_loop().time() + timeout
        self._code: grpc.StatusCode | None = None

    def invocation_metadata(self) -> Metadata:
        return self._metadata

    def time_remaining(self) -> float:
        return max(0.0, self._deadline - asyncio.get_running_loop().time())

    def code(self) -> grpc.StatusCode | None:
        return self._code

    def set_code(self, code: grpc.StatusCode) -> None:
        self._code = code

    async def abort(
        self,
        code: grpc.StatusCode,
        details: str = "",
        trailing_metadata: Sequence[tuple[str, str | bytes]] = (),
    ) -> None:
        self._code = code
        raise RpcFailure(code, details, tuple(trailing_metadata))


class InProcessInvoker:
    def __init__(self, handlers: dict[str, Callable[[Any, Any], Any]]) -> None:
        self._handlers = handlers

    @classmethod
    async def build(
        cls,
        registrations: Sequence[Callable[[Any], None]],
        interceptors: Sequence[grpc.aio.ServerInterceptor[Any, Any]],
    ) -> InProcessInvoker:
        """`registrations` register servicers on a server (e.g. a bound
        `add_UserServiceServicer_to_server`); `interceptors` wrap them as the server does."""
        recorder = _HandlerRecorder()
        for register in registrations:
            register(recorder)
        behaviours: dict[str, Callable[[Any, Any], Any]] = {}
        for method, raw in recorder.handlers.items():
            handler = raw
            for interceptor in reversed(interceptors):
                handler = await interceptor.intercept_service(
                    _continuation(handler), _Details(method, ())
                )
            if handler.unary_unary is not None:
                behaviours[method] = handler.unary_unary
        return cls(behaviours)

    async def __call__(
        self, route: Route, request: Message, *, deadline_s: float, metadata: Metadata
    ) -> Message:
        behaviour = self._handlers.get(route.grpc_method)
        if behaviour is None:
            raise RpcFailure(grpc.StatusCode.UNIMPLEMENTED, f"{route.grpc_method} not served")
        response: Message = await behaviour(request, _Context(metadata, deadline_s))
        return response


def _continuation(
    handler: grpc.RpcMethodHandler[Any, Any],
) -> Callable[[Any], Any]:
    async def continuation(details: Any) -> grpc.RpcMethodHandler[Any, Any]:
        del details
        return handler

    return continuation
