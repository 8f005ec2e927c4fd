"""Server interceptors: request ids, access logs and error mapping; authentication.

Both wrap the unary-unary behaviour of the handler, so the wrapper runs in the handler's own
task and the context variables it sets are visible to the servicer.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import Awaitable, Callable, Collection
from typing import TYPE_CHECKING, Any, cast

import grpc
from grpc.aio import ServicerContext

from memobase_server.domain.errors import MemobaseError
from memobase_server.observability.hooks import NO_OBSERVER, RpcObserver
from memobase_server.services.auth import Authenticator
from memobase_server.storage.errors import as_rejected, as_unavailable
from memobase_server.transport.grpc import errors
from memobase_server.transport.grpc.context import current_principal, current_request_id

log = logging.getLogger("memobase.rpc")

Behaviour = Callable[[Any, ServicerContext[Any, Any]], Awaitable[Any]]
if TYPE_CHECKING:  # the stubs make these generic; at run time they are plain classes
    Handler = grpc.RpcMethodHandler[Any, Any]
    ServerInterceptor = grpc.aio.ServerInterceptor[Any, Any]
else:
    Handler = grpc.RpcMethodHandler
    ServerInterceptor = grpc.aio.ServerInterceptor
Continuation = Callable[[grpc.HandlerCallDetails], Awaitable[Handler]]


def _metadata_value(context: ServicerContext[Any, Any], key: str) -> str | None:
    for item_key, value in context.invocation_metadata() or ():
        if item_key == key:
            return value.decode() if isinstance(value, bytes) else value
    return None


def _rewrap(handler: Handler, behaviour: Behaviour) -> Handler:
    return grpc.unary_unary_rpc_method_handler(
        behaviour,
        request_deserializer=handler.request_deserializer,
        response_serializer=handler.response_serializer,
    )


class CallInterceptor(ServerInterceptor):
    """Request id (from `x-request-id` metadata or new), one access log line per call, and
    domain errors turned into status codes. Unexpected errors are logged with their trace and
    reach the caller as INTERNAL with the request id only. Each call's latency and status code
    go to `observer` (the RPC metrics)."""

    def __init__(self, observer: RpcObserver = NO_OBSERVER) -> None:
        self._observer = observer

    async def intercept_service(
        self, continuation: Continuation, handler_call_details: grpc.HandlerCallDetails
    ) -> Handler:
        handler = await continuation(handler_call_details)
        if handler is None or handler.unary_unary is None:
            return handler
        inner = cast(Behaviour, handler.unary_unary)
        method = handler_call_details.method
        observer = self._observer

        async def behaviour(request: Any, context: ServicerContext[Any, Any]) -> Any:
            request_id = _metadata_value(context, "x-request-id") or uuid.uuid4().hex
            token = current_request_id.set(request_id[:64])
            started = time.perf_counter()
            code = grpc.StatusCode.OK
            try:
                # Work stops when the caller's deadline passes, not only the reply.
                async with asyncio.timeout(context.time_remaining()):
                    return await inner(request, context)
            except TimeoutError:
                code = grpc.StatusCode.DEADLINE_EXCEEDED
                await context.abort(code, "Deadline exceeded")
            except grpc.aio.AbortError:
                code = context.code() or grpc.StatusCode.UNKNOWN
                raise
            except asyncio.CancelledError:
                code = grpc.StatusCode.CANCELLED
                raise
            except MemobaseError as exc:
                code = errors.status_code(exc)
                await context.abort(
                    code, exc.message, trailing_metadata=errors.trailing_details(exc)
                )
            except Exception as exc:
                rejected = as_rejected(exc)
                if rejected is not None:
                    code = grpc.StatusCode.INVALID_ARGUMENT
                    await context.abort(
                        code, rejected.message, trailing_metadata=errors.trailing_details(rejected)
                    )
                unavailable = as_unavailable(exc)
                if unavailable is not None:
                    code = grpc.StatusCode.UNAVAILABLE
                    log.warning("%s unavailable: %r", method, exc)
                    await context.abort(
                        code,
                        unavailable.message,
                        trailing_metadata=errors.trailing_details(unavailable),
                    )
                code = grpc.StatusCode.INTERNAL
                log.exception("%s failed", method)
                await context.abort(code, f"Internal error (request id {request_id})")
            finally:
                elapsed = time.perf_counter() - started
                observer.rpc_done(method, code.name, elapsed)
                elapsed_ms = elapsed * 1000
                log.info(
                    "%s %s %.1fms",
                    method,
                    code.name,
                    elapsed_ms,
                    extra={"rpc": method, "code": code.name, "elapsed_ms": round(elapsed_ms, 2)},
                )
                current_request_id.reset(token)

        return _rewrap(handler, behaviour)


class AuthInterceptor(ServerInterceptor):
    """Resolves `authorization: Bearer <token>` metadata to a project for every method but the
    public ones (health, reflection, the REST healthcheck)."""

    def __init__(self, authenticator: Authenticator, public_methods: Collection[str]) -> None:
        self._authenticator = authenticator
        self._public = frozenset(public_methods)

    async def intercept_service(
        self, continuation: Continuation, handler_call_details: grpc.HandlerCallDetails
    ) -> Handler:
        handler = await continuation(handler_call_details)
        method = handler_call_details.method
        if handler is None or method in self._public or method.startswith("/grpc."):
            return handler
        if handler.unary_unary is None:
            return handler
        inner = cast(Behaviour, handler.unary_unary)
        authenticator = self._authenticator

        async def behaviour(request: Any, context: ServicerContext[Any, Any]) -> Any:
            principal = await authenticator.authenticate(_metadata_value(context, "authorization"))
            token = current_principal.set(principal)
            try:
                return await inner(request, context)
            finally:
                current_principal.reset(token)

        return _rewrap(handler, behaviour)
