"""gRPC status → (HTTP status, errno, errmsg) for the Memobase envelope."""

from __future__ import annotations

from collections import namedtuple

import grpc
import pytest
from google.protobuf import any_pb2
from google.rpc import (  # type: ignore[import-untyped, unused-ignore]
    code_pb2,
    error_details_pb2,
    status_pb2,
)

from memobase_server.transport.gateway.errors import (
    MALFORMED_REQUEST,
    STATUS_DETAILS_KEY,
    DecodeError,
    HttpError,
    decode_error,
    error_reason,
    from_rpc_status,
    method_not_allowed,
    not_found,
    payload_too_large,
)

RID = "0123456789abcdef0123456789abcdef"


def details_metadata(reason: str) -> tuple[tuple[str, bytes], ...]:
    detail = any_pb2.Any()
    detail.Pack(error_details_pb2.ErrorInfo(reason=reason, domain="memobase"))
    status = status_pb2.Status(code=code_pb2.INVALID_ARGUMENT, message="m", details=[detail])
    return ((STATUS_DETAILS_KEY, status.SerializeToString()),)


@pytest.mark.parametrize(
    ("code", "status", "errno"),
    [
        (grpc.StatusCode.OK, 200, 0),
        (grpc.StatusCode.INVALID_ARGUMENT, 200, 400),
        (grpc.StatusCode.FAILED_PRECONDITION, 200, 400),
        (grpc.StatusCode.OUT_OF_RANGE, 200, 400),
        (grpc.StatusCode.NOT_FOUND, 200, 404),
        (grpc.StatusCode.ALREADY_EXISTS, 200, 409),
        (grpc.StatusCode.ABORTED, 200, 409),
        (grpc.StatusCode.PERMISSION_DENIED, 403, 403),
        (grpc.StatusCode.RESOURCE_EXHAUSTED, 200, 503),
        (grpc.StatusCode.UNAVAILABLE, 200, 503),
        (grpc.StatusCode.DEADLINE_EXCEEDED, 200, 504),
        (grpc.StatusCode.UNIMPLEMENTED, 501, 501),
    ],
)
def test_business_codes_forward_the_servers_message(
    code: grpc.StatusCode, status: int, errno: int
) -> None:
    assert from_rpc_status(code, "User x not found", None, RID) == HttpError(
        status, errno, "User x not found"
    )


@pytest.mark.parametrize(
    "code",
    [
        grpc.StatusCode.CANCELLED,
        grpc.StatusCode.UNKNOWN,
        grpc.StatusCode.INTERNAL,
        grpc.StatusCode.DATA_LOSS,
    ],
)
def test_internal_failures_hide_their_details(code: grpc.StatusCode) -> None:
    failure = from_rpc_status(code, 'psycopg: relation "x" does not exist', (), RID)
    assert failure == HttpError(200, 500, f"Internal error; request id {RID}")


def test_message_size_limit_is_413() -> None:
    details = "Received message larger than max (9000000 vs. 4194304)"
    assert from_rpc_status(grpc.StatusCode.RESOURCE_EXHAUSTED, details, None, RID) == HttpError(
        413, 413, details
    )
    quota = from_rpc_status(grpc.StatusCode.RESOURCE_EXHAUSTED, "Token quota used up", None, RID)
    assert (quota.status, quota.errno) == (200, 503)


def test_unauthenticated_names_the_path() -> None:
    failure = from_rpc_status(grpc.StatusCode.UNAUTHENTICATED, "Invalid token", None, RID, "/x")
    assert failure == HttpError(401, 401, "Unauthorized access to /x. Invalid token")


def test_malformed_request_error_info_is_422() -> None:
    failure = from_rpc_status(
        grpc.StatusCode.INVALID_ARGUMENT,
        "user_id: must be a UUID v4 or v5",
        details_metadata(MALFORMED_REQUEST),
        RID,
    )
    assert (failure.status, failure.errno, failure.errmsg) == (
        422,
        422,
        "user_id: must be a UUID v4 or v5",
    )
    assert failure.detail == (
        {"loc": [], "msg": "user_id: must be a UUID v4 or v5", "type": "value_error"},
    )


def test_other_error_info_reasons_keep_the_code_mapping() -> None:
    failure = from_rpc_status(
        grpc.StatusCode.INVALID_ARGUMENT, "bad config", details_metadata("BAD_CONFIG"), RID
    )
    assert failure == HttpError(200, 400, "bad config")


def test_error_reason_tolerates_garbage_and_metadatum_objects() -> None:
    metadatum = namedtuple("metadatum", ["key", "value"])
    assert error_reason([metadatum(STATUS_DETAILS_KEY, b"\xff\xff\xff")]) is None
    assert error_reason([("other", "x"), ("x", b"")]) is None
    assert error_reason(None) is None
    assert error_reason([metadatum(*details_metadata("R")[0])]) == "R"
    assert error_reason([object(), (STATUS_DETAILS_KEY, "not bytes")]) is None


def test_connection_failures_do_not_name_internal_addresses() -> None:
    failure = from_rpc_status(
        grpc.StatusCode.UNAVAILABLE,
        "failed to connect to all addresses; last error: ipv4:10.0.0.7:50051: refused",
        None,
        RID,
    )
    assert (failure.status, failure.errno) == (200, 503)
    assert "10.0.0.7" not in failure.errmsg
    assert RID in failure.errmsg


def test_gateway_level_errors() -> None:
    failure = decode_error(DecodeError("page", "invalid integer 'x'"))
    assert (failure.status, failure.errno, failure.errmsg) == (
        422,
        422,
        "Invalid request: page: invalid integer 'x'",
    )
    assert failure.detail == (
        {"loc": ["page"], "msg": "invalid integer 'x'", "type": "value_error"},
    )
    assert (not_found("GET", "/x").status, not_found("GET", "/x").errno) == (404, 404)
    assert (method_not_allowed("PATCH", "/x").status, method_not_allowed("PATCH", "/x").errno) == (
        405,
        405,
    )
    too_large = payload_too_large(10)
    assert (too_large.status, too_large.errno) == (413, 413)
    assert "10 bytes" in too_large.errmsg
