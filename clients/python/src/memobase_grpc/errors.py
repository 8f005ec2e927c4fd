"""Errors raised by the client: one class per gRPC status code the service answers with.

Every error is a `MemobaseError` carrying the status `code`, the server's `message` and, when
the server sent one, the `reason` of its `google.rpc.ErrorInfo` (e.g. ``MALFORMED_REQUEST``).
`ServerError` is an alias of `MemobaseError`, the name the official `memobase` SDK uses.
"""

from __future__ import annotations

from collections.abc import Iterable

import grpc
from google.rpc import error_details_pb2, status_pb2

_STATUS_DETAILS_KEY = "grpc-status-details-bin"


class MemobaseError(Exception):
    """A call failed; `code` is the gRPC status, `message` the server's explanation."""

    code: grpc.StatusCode = grpc.StatusCode.UNKNOWN

    def __init__(
        self, message: str, *, code: grpc.StatusCode | None = None, reason: str | None = None
    ) -> None:
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code
        self.reason = reason

    def __str__(self) -> str:
        return f"{self.code.name}: {self.message}"


ServerError = MemobaseError


class InvalidArgument(MemobaseError):
    """A value was not acceptable (INVALID_ARGUMENT, OUT_OF_RANGE)."""

    code = grpc.StatusCode.INVALID_ARGUMENT


class NotFound(MemobaseError):
    """The user, blob, profile slot or event does not exist (NOT_FOUND)."""

    code = grpc.StatusCode.NOT_FOUND


class AlreadyExists(MemobaseError):
    """The id is taken (ALREADY_EXISTS)."""

    code = grpc.StatusCode.ALREADY_EXISTS


class FailedPrecondition(MemobaseError):
    """Not possible in the current state, e.g. no LLM configured (FAILED_PRECONDITION)."""

    code = grpc.StatusCode.FAILED_PRECONDITION


class Unauthenticated(MemobaseError):
    """The token is missing or wrong (UNAUTHENTICATED)."""

    code = grpc.StatusCode.UNAUTHENTICATED


class PermissionDenied(MemobaseError):
    """The token may not do this, e.g. a root-only call with a project key (PERMISSION_DENIED)."""

    code = grpc.StatusCode.PERMISSION_DENIED


class ResourceExhausted(MemobaseError):
    """A size or quota limit was hit (RESOURCE_EXHAUSTED)."""

    code = grpc.StatusCode.RESOURCE_EXHAUSTED


class Unavailable(MemobaseError):
    """The service or one of its dependencies cannot be reached; retried (UNAVAILABLE)."""

    code = grpc.StatusCode.UNAVAILABLE


class DeadlineExceeded(MemobaseError):
    """The call did not finish within the client's timeout (DEADLINE_EXCEEDED)."""

    code = grpc.StatusCode.DEADLINE_EXCEEDED


class Unimplemented(MemobaseError):
    """The call is part of the contract but not served yet (UNIMPLEMENTED)."""

    code = grpc.StatusCode.UNIMPLEMENTED


class Cancelled(MemobaseError):
    """The call was cancelled (CANCELLED)."""

    code = grpc.StatusCode.CANCELLED


class InternalError(MemobaseError):
    """The service failed (INTERNAL, UNKNOWN, DATA_LOSS)."""

    code = grpc.StatusCode.INTERNAL


_BY_CODE: dict[grpc.StatusCode, type[MemobaseError]] = {
    grpc.StatusCode.INVALID_ARGUMENT: InvalidArgument,
    grpc.StatusCode.OUT_OF_RANGE: InvalidArgument,
    grpc.StatusCode.NOT_FOUND: NotFound,
    grpc.StatusCode.ALREADY_EXISTS: AlreadyExists,
    grpc.StatusCode.FAILED_PRECONDITION: FailedPrecondition,
    grpc.StatusCode.ABORTED: FailedPrecondition,
    grpc.StatusCode.UNAUTHENTICATED: Unauthenticated,
    grpc.StatusCode.PERMISSION_DENIED: PermissionDenied,
    grpc.StatusCode.RESOURCE_EXHAUSTED: ResourceExhausted,
    grpc.StatusCode.UNAVAILABLE: Unavailable,
    grpc.StatusCode.DEADLINE_EXCEEDED: DeadlineExceeded,
    grpc.StatusCode.UNIMPLEMENTED: Unimplemented,
    grpc.StatusCode.CANCELLED: Cancelled,
    grpc.StatusCode.INTERNAL: InternalError,
    grpc.StatusCode.UNKNOWN: InternalError,
    grpc.StatusCode.DATA_LOSS: InternalError,
}


def error_class(code: grpc.StatusCode) -> type[MemobaseError]:
    return _BY_CODE.get(code, MemobaseError)


def _reason(trailing: Iterable[object] | None) -> str | None:
    """The ErrorInfo reason from the rich status in the trailing metadata, if any."""
    for item in trailing or ():
        if not isinstance(item, tuple) or len(item) != 2:
            continue
        key, value = item
        if key != _STATUS_DETAILS_KEY or not isinstance(value, bytes):
            continue
        status = status_pb2.Status()
        try:
            status.ParseFromString(value)
        except Exception:
            return None
        for detail in status.details:
            info = error_details_pb2.ErrorInfo()
            if detail.Unpack(info):
                return info.reason or None
    return None


def from_rpc_error(exc: grpc.aio.AioRpcError) -> MemobaseError:
    """The client error for a failed call."""
    code = exc.code()
    message = exc.details() or code.name
    reason = _reason(exc.trailing_metadata())
    return error_class(code)(message, code=code, reason=reason)
