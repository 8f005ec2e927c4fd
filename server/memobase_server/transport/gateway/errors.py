"""Gateway errors and the gRPC status → (HTTP status, errno) mapping of the Memobase envelope."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import grpc
from google.protobuf.message import DecodeError as ProtoDecodeError
from google.rpc import error_details_pb2, status_pb2  # type: ignore[import-untyped, unused-ignore]

STATUS_DETAILS_KEY = "grpc-status-details-bin"
MALFORMED_REQUEST = "MALFORMED_REQUEST"

_MESSAGE_TOO_LARGE = ("received message larger than max", "sent message larger than max")
_CONNECT_FAILURE = "failed to connect to all addresses"


class DecodeError(Exception):
    """A request that cannot be turned into its protobuf message (answered with HTTP 422)."""

    def __init__(self, field: str, problem: str) -> None:
        super().__init__(f"{field}: {problem}" if field else problem)
        self.field = field
        self.problem = problem


@dataclass(frozen=True, slots=True)
class HttpError:
    """An error answer: the HTTP status, the envelope's errno and its errmsg."""

    status: int
    errno: int
    errmsg: str
    # FastAPI-style validation details, kept beside the envelope on 422 answers.
    detail: tuple[dict[str, object], ...] | None = None


def decode_error(error: DecodeError) -> HttpError:
    loc = [part for part in error.field.split(".") if part] if error.field else []
    detail: dict[str, object] = {"loc": loc, "msg": error.problem, "type": "value_error"}
    return HttpError(422, 422, f"Invalid request: {error}", (detail,))


def not_found(method: str, path: str) -> HttpError:
    return HttpError(404, 404, f"Not Found: no route for {method} {path}")


def method_not_allowed(method: str, path: str) -> HttpError:
    return HttpError(405, 405, f"Method Not Allowed: {method} {path}")


def payload_too_large(limit: int) -> HttpError:
    return HttpError(413, 413, f"Request body larger than {limit} bytes")


def internal_error(request_id: str) -> HttpError:
    return HttpError(200, 500, f"Internal error; request id {request_id}")


_BY_CODE: dict[grpc.StatusCode, tuple[int, int]] = {
    grpc.StatusCode.OK: (200, 0),
    grpc.StatusCode.INVALID_ARGUMENT: (200, 400),
    grpc.StatusCode.FAILED_PRECONDITION: (200, 400),
    grpc.StatusCode.OUT_OF_RANGE: (200, 400),
    grpc.StatusCode.NOT_FOUND: (200, 404),
    grpc.StatusCode.ALREADY_EXISTS: (200, 409),
    grpc.StatusCode.ABORTED: (200, 409),
    grpc.StatusCode.UNAUTHENTICATED: (401, 401),
    grpc.StatusCode.PERMISSION_DENIED: (403, 403),
    grpc.StatusCode.RESOURCE_EXHAUSTED: (200, 503),
    grpc.StatusCode.UNAVAILABLE: (200, 503),
    grpc.StatusCode.DEADLINE_EXCEEDED: (200, 504),
    grpc.StatusCode.UNIMPLEMENTED: (501, 501),
}


def error_reason(trailing_metadata: Iterable[object] | None) -> str | None:
    """The ErrorInfo.reason carried in `grpc-status-details-bin`, if any."""
    for item in trailing_metadata or ():
        if not isinstance(item, tuple) or len(item) != 2:
            continue
        key, value = item
        if key != STATUS_DETAILS_KEY or not isinstance(value, bytes):
            continue
        status = status_pb2.Status()
        try:
            status.ParseFromString(value)
        except ProtoDecodeError:
            return None
        for detail in status.details:
            if detail.Is(error_details_pb2.ErrorInfo.DESCRIPTOR):
                info = error_details_pb2.ErrorInfo()
                detail.Unpack(info)
                reason: str = info.reason
                return reason
    return None


def from_rpc_status(
    code: grpc.StatusCode,
    details: str | None,
    trailing_metadata: Iterable[object] | None,
    request_id: str,
    path: str = "",
) -> HttpError:
    """Maps a gRPC status to the envelope; internal failures never leak their details."""
    message = details or ""
    if error_reason(trailing_metadata) == MALFORMED_REQUEST:
        message = message or "Malformed request"
        return HttpError(422, 422, message, ({"loc": [], "msg": message, "type": "value_error"},))
    if code is grpc.StatusCode.UNAUTHENTICATED:
        return HttpError(401, 401, f"Unauthorized access to {path}. {message}".strip())
    if code is grpc.StatusCode.RESOURCE_EXHAUSTED and message.lower().startswith(
        _MESSAGE_TOO_LARGE
    ):
        return HttpError(413, 413, message)
    mapped = _BY_CODE.get(code)
    if mapped is None:
        return internal_error(request_id)
    if code is grpc.StatusCode.UNAVAILABLE and message.lower().startswith(_CONNECT_FAILURE):
        # Client-side connection failures name internal addresses.
        message = f"Service unavailable; request id {request_id}"
    status, errno = mapped
    return HttpError(status, errno, message)
