"""Typed Python client for memobase-server's gRPC API, synchronous and asynchronous.

from memobase_grpc import ChatBlob, MemobaseClient

with MemobaseClient("127.0.0.1:50051", "memobase-local-root-token") as client:
    user = client.get_user(client.add_user({"name": "Ada"}))
    user.insert(ChatBlob(messages=[{"role": "user", "content": "I live in London"}]))
    user.flush(sync=True)
    print(user.profile())
"""

from __future__ import annotations

from memobase_grpc.aio import AsyncMemobaseClient, AsyncUser
from memobase_grpc.errors import (
    AlreadyExists,
    Cancelled,
    DeadlineExceeded,
    FailedPrecondition,
    InternalError,
    InvalidArgument,
    MemobaseError,
    NotFound,
    PermissionDenied,
    ResourceExhausted,
    ServerError,
    Unauthenticated,
    Unavailable,
    Unimplemented,
)
from memobase_grpc.ids import as_user_id, string_to_uuid
from memobase_grpc.sync import MemobaseClient, User
from memobase_grpc.types import (
    Blob,
    BlobType,
    BufferStatus,
    ChatBlob,
    ChatMessage,
    DocBlob,
    EventData,
    EventGistData,
    EventTag,
    ProfileDelta,
    SummaryBlob,
    UserData,
    UserEvent,
    UserEventGist,
    UserProfile,
    profiles_to_json,
)

__version__ = "0.1.0"

__all__ = [
    "AlreadyExists",
    "AsyncMemobaseClient",
    "AsyncUser",
    "Blob",
    "BlobType",
    "BufferStatus",
    "Cancelled",
    "ChatBlob",
    "ChatMessage",
    "DeadlineExceeded",
    "DocBlob",
    "EventData",
    "EventGistData",
    "EventTag",
    "FailedPrecondition",
    "InternalError",
    "InvalidArgument",
    "MemobaseClient",
    "MemobaseError",
    "NotFound",
    "PermissionDenied",
    "ProfileDelta",
    "ResourceExhausted",
    "ServerError",
    "SummaryBlob",
    "Unauthenticated",
    "Unavailable",
    "Unimplemented",
    "User",
    "UserData",
    "UserEvent",
    "UserEventGist",
    "UserProfile",
    "__version__",
    "as_user_id",
    "profiles_to_json",
    "string_to_uuid",
]
