"""Domain errors -> gRPC status codes, with a google.rpc.ErrorInfo for machine-readable reasons."""

from __future__ import annotations

import grpc
from google.rpc import error_details_pb2, status_pb2

from memobase_server.domain import errors

ERROR_DOMAIN = "memobase.v1"
MALFORMED_REQUEST = "MALFORMED_REQUEST"
STATUS_DETAILS_KEY = "grpc-status-details-bin"

_CODES: list[tuple[type[errors.MemobaseError], grpc.StatusCode]] = [
    (errors.InvalidArgument, grpc.StatusCode.INVALID_ARGUMENT),
    (errors.NotFound, grpc.StatusCode.NOT_FOUND),
    (errors.AlreadyExists, grpc.StatusCode.ALREADY_EXISTS),
    (errors.FailedPrecondition, grpc.StatusCode.FAILED_PRECONDITION),
    (errors.Unauthenticated, grpc.StatusCode.UNAUTHENTICATED),
    (errors.PermissionDenied, grpc.StatusCode.PERMISSION_DENIED),
    (errors.ResourceExhausted, grpc.StatusCode.RESOURCE_EXHAUSTED),
    (errors.Unavailable, grpc.StatusCode.UNAVAILABLE),
    (errors.NotImplementedYet, grpc.StatusCode.UNIMPLEMENTED),
]


def status_code(exc: errors.MemobaseError) -> grpc.StatusCode:
    for kind, code in _CODES:
        if isinstance(exc, kind):
            return code
    return grpc.StatusCode.INTERNAL


def reason(exc: errors.MemobaseError) -> str:
    if isinstance(exc, errors.MalformedRequest):
        return MALFORMED_REQUEST
    return status_code(exc).name


def trailing_details(exc: errors.MemobaseError) -> tuple[tuple[str, bytes], ...]:
    """The rich error model: a google.rpc.Status carrying an ErrorInfo with our reason."""
    code = status_code(exc)
    info = error_details_pb2.ErrorInfo(reason=reason(exc), domain=ERROR_DOMAIN)
    status = status_pb2.Status(code=code.value[0], message=exc.message)
    status.details.add().Pack(info)
    return ((STATUS_DETAILS_KEY, status.SerializeToString()),)
