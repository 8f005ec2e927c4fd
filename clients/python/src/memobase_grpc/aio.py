"""The asynchronous client, on `grpc.aio`. It is the one implementation: the synchronous
`memobase_grpc.MemobaseClient` runs these coroutines on a private event loop.

Every call carries `authorization: Bearer <token>` and a deadline (`timeout` seconds for the
whole call, retries included). Calls that are safe to repeat are retried on UNAVAILABLE with
exponential backoff and jitter: reads, replacements, deletes, flushes, user creation (the id
fixes the user) and blob inserts (each insert carries an `idempotency_key`, the same on every
attempt, so the server stores one blob). Adding a profile slot is never retried.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import random
import uuid
from collections.abc import Mapping, Sequence
from types import TracebackType
from typing import Any, Self, TypeVar

import grpc
from google.protobuf import field_mask_pb2

from memobase_grpc import _convert, errors
from memobase_grpc._gen.memobase.v1 import (
    blob_pb2,
    blob_pb2_grpc,
    common_pb2,
    event_pb2,
    event_pb2_grpc,
    profile_pb2,
    profile_pb2_grpc,
    project_pb2,
    project_pb2_grpc,
    user_pb2,
    user_pb2_grpc,
)
from memobase_grpc.types import (
    Blob,
    BlobType,
    BufferStatus,
    ChatMessage,
    Message,
    UserData,
    UserEvent,
    UserEventGist,
    UserProfile,
)

DEFAULT_TIMEOUT = 30.0
DEFAULT_RETRIES = 3
TOKEN_ENVS = ("MEMOBASE_API_KEY", "MEMOBASE_TOKEN")

_Req = TypeVar("_Req")
_Resp = TypeVar("_Resp")


class _Stubs:
    """The five services' stubs on one channel."""

    def __init__(self, channel: grpc.aio.Channel) -> None:
        self.channel = channel
        self.users = user_pb2_grpc.UserServiceStub(channel)
        self.blobs = blob_pb2_grpc.BlobServiceStub(channel)
        self.profiles = profile_pb2_grpc.ProfileServiceStub(channel)
        self.events = event_pb2_grpc.EventServiceStub(channel)
        self.projects = project_pb2_grpc.ProjectServiceStub(channel)


def _chats_json(chats: Sequence[Message] | None) -> str | None:
    if not chats:
        return None
    return json.dumps([ChatMessage.coerce(c).to_dict() for c in chats], ensure_ascii=False)


def _limits_json(topic_limits: Mapping[str, int] | None) -> str | None:
    return json.dumps(dict(topic_limits)) if topic_limits else None


class AsyncMemobaseClient:
    """Asynchronous client for memobase-server's gRPC API.

    `target` is the server's `host:port`; `token` is the root token or a project key
    (default: `$MEMOBASE_API_KEY`, else `$MEMOBASE_TOKEN`). `timeout` is each call's deadline
    in seconds, retries included; `retries` is how many times a call safe to repeat is retried on
    UNAVAILABLE, waiting `backoff * 2**n` seconds (capped at `max_backoff`, with jitter).
    Pass `credentials` (e.g. `grpc.ssl_channel_credentials()`) for TLS. The channel is opened
    on first use, in the running event loop; use the client in one loop and `close()` it
    (or `async with`) when done.
    """

    def __init__(
        self,
        target: str,
        token: str | None = None,
        *,
        timeout: float = DEFAULT_TIMEOUT,
        retries: int = DEFAULT_RETRIES,
        backoff: float = 0.1,
        max_backoff: float = 2.0,
        credentials: grpc.ChannelCredentials | None = None,
        options: Sequence[tuple[str, Any]] = (),
        interceptors: Sequence[grpc.aio.UnaryUnaryClientInterceptor[Any, Any]] = (),
    ) -> None:
        for name in TOKEN_ENVS:
            token = token or os.environ.get(name)
        if not token:
            raise ValueError("a token is required: pass token= or set MEMOBASE_API_KEY")
        if timeout <= 0:
            raise ValueError("timeout must be positive")
        if retries < 0:
            raise ValueError("retries must not be negative")
        self.target = target
        self.timeout = timeout
        self.retries = retries
        self.backoff = backoff
        self.max_backoff = max_backoff
        self._metadata = (("authorization", f"Bearer {token}"),)
        self._credentials = credentials
        self._options = list(options)
        self._interceptors: list[Any] = list(interceptors)
        self._stubs: _Stubs | None = None

    # -- plumbing ---------------------------------------------------------------------------

    @property
    def _rpc(self) -> _Stubs:
        if self._stubs is None:
            if self._credentials is not None:
                channel = grpc.aio.secure_channel(
                    self.target, self._credentials, self._options, None, self._interceptors
                )
            else:
                channel = grpc.aio.insecure_channel(
                    self.target, self._options, None, self._interceptors
                )
            self._stubs = _Stubs(channel)
        return self._stubs

    async def close(self) -> None:
        """Closes the channel; calls in flight are cancelled."""
        stubs, self._stubs = self._stubs, None
        if stubs is not None:
            await stubs.channel.close(None)

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    async def _invoke(
        self,
        rpc: grpc.aio.UnaryUnaryMultiCallable[_Req, _Resp],
        request: _Req,
        *,
        retry: bool,
        done_after_retry: grpc.StatusCode | None = None,
    ) -> _Resp | None:
        """One call with its deadline and retries. Returns None when a retried attempt
        answers `done_after_retry` (an earlier attempt did the work)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.timeout
        attempt = 0
        while True:
            remaining = deadline - loop.time()
            try:
                if remaining <= 0:
                    raise errors.DeadlineExceeded("Deadline exceeded")
                return await rpc(request, timeout=remaining, metadata=self._metadata)
            except grpc.aio.AioRpcError as exc:
                code = exc.code()
                if attempt > 0 and code == done_after_retry:
                    return None
                delay = min(self.max_backoff, self.backoff * 2**attempt)
                delay *= random.uniform(0.5, 1.0)
                if (
                    code != grpc.StatusCode.UNAVAILABLE
                    or not retry
                    or attempt >= self.retries
                    or loop.time() + delay >= deadline
                ):
                    raise errors.from_rpc_error(exc) from None
            await asyncio.sleep(delay)
            attempt += 1

    async def _call(
        self,
        rpc: grpc.aio.UnaryUnaryMultiCallable[_Req, _Resp],
        request: _Req,
        *,
        retry: bool = True,
    ) -> _Resp:
        reply = await self._invoke(rpc, request, retry=retry)
        assert reply is not None
        return reply

    # -- project ----------------------------------------------------------------------------

    async def ping(self) -> bool:
        """True when the server answers its health check (no token needed)."""
        try:
            await self._call(self._rpc.projects.Healthcheck, project_pb2.HealthcheckRequest())
        except errors.MemobaseError:
            return False
        return True

    # -- users ------------------------------------------------------------------------------

    async def add_user(self, data: Mapping[str, Any] | None = None, id: str | None = None) -> str:
        """Creates a user and returns its id (a new UUID v4 unless `id` is given).
        An id that is taken raises `AlreadyExists`."""
        generated = id is None
        user_id = str(uuid.uuid4()) if id is None else id
        request = user_pb2.CreateUserRequest(data=_convert.struct(data), id=user_id)
        reply = await self._invoke(
            self._rpc.users.CreateUser,
            request,
            retry=True,
            # Our own fresh id was taken: by an earlier attempt of this very call.
            done_after_retry=grpc.StatusCode.ALREADY_EXISTS if generated else None,
        )
        return reply.id if reply is not None else user_id

    async def get_user(self, user_id: str, no_get: bool = False) -> AsyncUser:
        """The user; raises `NotFound` for an unknown id. With `no_get`, no call is made."""
        if no_get:
            return AsyncUser(user_id, self)
        return AsyncUser(user_id, self, await self.get_user_data(user_id))

    async def get_user_data(self, user_id: str) -> UserData:
        """The user's stored data and timestamps."""
        reply = await self._call(self._rpc.users.GetUser, user_pb2.GetUserRequest(user_id=user_id))
        return UserData(
            id=reply.id or user_id,
            data=_convert.from_struct(reply.data) if reply.HasField("data") else None,
            created_at=_convert.timestamp(reply.created_at, reply.HasField("created_at")),
            updated_at=_convert.timestamp(reply.updated_at, reply.HasField("updated_at")),
        )

    async def get_or_create_user(self, user_id: str) -> AsyncUser:
        """The user, created first (with no data) when it does not exist."""
        try:
            return await self.get_user(user_id)
        except errors.NotFound:
            pass
        with contextlib.suppress(errors.AlreadyExists):  # created meanwhile by someone else
            await self.add_user(id=user_id)
        return await self.get_user(user_id)

    async def update_user(self, user_id: str, data: Mapping[str, Any] | None = None) -> str:
        """Replaces the user's data; returns the user id."""
        request = user_pb2.UpdateUserRequest(user_id=user_id, data=_convert.struct(data))
        reply = await self._call(self._rpc.users.UpdateUser, request)
        return reply.id or user_id

    async def delete_user(self, user_id: str) -> bool:
        """Deletes the user and everything of theirs."""
        await self._call(self._rpc.users.DeleteUser, user_pb2.DeleteUserRequest(user_id=user_id))
        return True


class AsyncUser:
    """One user's memory: blobs, buffer, profile, events and context."""

    def __init__(
        self, user_id: str, client: AsyncMemobaseClient, data: UserData | None = None
    ) -> None:
        self.user_id = user_id
        self.client = client
        self.data = data

    @property
    def fields(self) -> dict[str, Any] | None:
        """The user's free-form data, as read by `get_user` (None with `no_get`)."""
        return self.data.data if self.data is not None else None

    def __repr__(self) -> str:
        return f"{type(self).__name__}(user_id={self.user_id!r})"

    # -- blobs ------------------------------------------------------------------------------

    async def insert(
        self, blob: Blob, sync: bool = False, *, idempotency_key: str | None = None
    ) -> str:
        """Stores a blob and returns its id. With `sync`, a flush the insert triggers runs
        before the answer. Retries reuse one idempotency key (a new one per call unless given),
        so a retried insert stores one blob."""
        request = blob_pb2.InsertBlobRequest(
            user_id=self.user_id,
            blob=_convert.blob_input(blob),
            wait_process=sync,
            idempotency_key=idempotency_key or uuid.uuid4().hex,
        )
        reply = await self.client._call(self.client._rpc.blobs.InsertBlob, request)
        return reply.id

    async def get(self, blob_id: str) -> Blob:
        """One blob (`ChatBlob`, `SummaryBlob` or `DocBlob`)."""
        reply = await self.client._call(
            self.client._rpc.blobs.GetBlob,
            blob_pb2.GetBlobRequest(user_id=self.user_id, blob_id=blob_id),
        )
        return _convert.blob(
            reply.blob_type,
            _convert.from_struct(reply.blob_data),
            _convert.from_struct(reply.fields) if reply.HasField("fields") else None,
            _convert.timestamp(reply.created_at, reply.HasField("created_at")),
        )

    async def get_all(
        self, blob_type: BlobType | str = BlobType.chat, page: int = 0, page_size: int = 10
    ) -> list[str]:
        """Ids of the user's blobs of one type, oldest first, one page."""
        request = blob_pb2.ListBlobsRequest(
            user_id=self.user_id,
            blob_type=_convert.blob_type(blob_type),
            page=page,
            page_size=page_size,
        )
        reply = await self.client._call(self.client._rpc.blobs.ListBlobs, request)
        return list(reply.ids)

    async def delete(self, blob_id: str) -> bool:
        """Deletes a blob (a missing blob is not an error)."""
        await self.client._call(
            self.client._rpc.blobs.DeleteBlob,
            blob_pb2.DeleteBlobRequest(user_id=self.user_id, blob_id=blob_id),
        )
        return True

    async def flush(self, blob_type: BlobType | str = BlobType.chat, sync: bool = False) -> bool:
        """Turns the waiting chats into memory: in the background, or before answering with
        `sync`."""
        request = blob_pb2.FlushBufferRequest(
            user_id=self.user_id, buffer_type=_convert.blob_type(blob_type), wait_process=sync
        )
        await self.client._call(self.client._rpc.blobs.FlushBuffer, request)
        return True

    async def buffer(
        self, blob_type: BlobType | str = BlobType.chat, status: BufferStatus = "idle"
    ) -> list[str]:
        """Ids of the user's buffer entries of one type in one status."""
        request = blob_pb2.GetBufferCapacityRequest(
            user_id=self.user_id,
            buffer_type=_convert.blob_type(blob_type),
            status=_convert.buffer_status(status),
        )
        reply = await self.client._call(self.client._rpc.blobs.GetBufferCapacity, request)
        return list(reply.ids)

    # -- profile ----------------------------------------------------------------------------

    async def profile(
        self,
        max_token_size: int = 1000,
        prefer_topics: Sequence[str] | None = None,
        only_topics: Sequence[str] | None = None,
        max_subtopic_size: int | None = None,
        topic_limits: Mapping[str, int] | None = None,
        chats: Sequence[Message] | None = None,
        topk: int | None = None,
    ) -> list[UserProfile]:
        """The user's profile slots, filtered and cut to a token budget. With `chats`, an LLM
        picks the slots relevant to them. `profiles_to_json()` gives the SDK's `need_json`."""
        request = profile_pb2.GetProfileRequest(
            user_id=self.user_id,
            topk=topk,
            max_token_size=max_token_size,
            prefer_topics=prefer_topics or (),
            only_topics=only_topics or (),
            max_subtopic_size=max_subtopic_size,
            topic_limits_json=_limits_json(topic_limits),
            chats_str=_chats_json(chats),
        )
        reply = await self.client._call(self.client._rpc.profiles.GetProfile, request)
        return [_convert.profile(p) for p in reply.profiles]

    async def add_profile(self, content: str, topic: str, sub_topic: str) -> str:
        """Adds a slot by hand and returns its id (never retried)."""
        request = profile_pb2.AddProfileRequest(
            user_id=self.user_id,
            content=content,
            attributes=common_pb2.ProfileAttributes(topic=topic, sub_topic=sub_topic),
        )
        reply = await self.client._call(self.client._rpc.profiles.AddProfile, request, retry=False)
        return reply.id

    async def update_profile(
        self, profile_id: str, content: str, topic: str, sub_topic: str
    ) -> bool:
        """Replaces a slot's content and attributes."""
        request = profile_pb2.UpdateProfileRequest(
            user_id=self.user_id,
            profile_id=profile_id,
            content=content,
            attributes=common_pb2.ProfileAttributes(topic=topic, sub_topic=sub_topic),
        )
        await self.client._call(self.client._rpc.profiles.UpdateProfile, request)
        return True

    async def delete_profile(self, profile_id: str) -> bool:
        """Deletes a slot."""
        request = profile_pb2.DeleteProfileRequest(user_id=self.user_id, profile_id=profile_id)
        await self.client._call(self.client._rpc.profiles.DeleteProfile, request)
        return True

    # -- events -----------------------------------------------------------------------------

    async def event(
        self, topk: int = 10, max_token_size: int | None = None, need_summary: bool = False
    ) -> list[UserEvent]:
        """The user's recent events, newest first."""
        request = event_pb2.ListEventsRequest(
            user_id=self.user_id,
            topk=topk,
            max_token_size=max_token_size,
            need_summary=need_summary or None,
        )
        reply = await self.client._call(self.client._rpc.events.ListEvents, request)
        return [_convert.event(e) for e in reply.events]

    async def update_event(self, event_id: str, event_data: Mapping[str, Any]) -> bool:
        """Replaces the given top-level fields of an event (`event_tip`, `profile_delta`,
        `event_tags`)."""
        data, paths = _convert.event_data(event_data)
        request = event_pb2.UpdateEventRequest(
            user_id=self.user_id,
            event_id=event_id,
            event_data=data,
            update_mask=field_mask_pb2.FieldMask(paths=paths),
        )
        await self.client._call(self.client._rpc.events.UpdateEvent, request)
        return True

    async def delete_event(self, event_id: str) -> bool:
        """Deletes an event and its gists."""
        request = event_pb2.DeleteEventRequest(user_id=self.user_id, event_id=event_id)
        await self.client._call(self.client._rpc.events.DeleteEvent, request)
        return True

    async def search_event(
        self,
        query: str,
        topk: int = 10,
        similarity_threshold: float = 0.2,
        time_range_in_days: int = 180,
    ) -> list[UserEvent]:
        """Events semantically close to `query`, most similar first."""
        request = event_pb2.SearchEventsRequest(
            user_id=self.user_id,
            query=query,
            topk=topk,
            similarity_threshold=similarity_threshold,
            time_range_in_days=time_range_in_days,
        )
        reply = await self.client._call(self.client._rpc.events.SearchEvents, request)
        return [_convert.event(e) for e in reply.events]

    async def search_event_gist(
        self,
        query: str,
        topk: int = 10,
        similarity_threshold: float = 0.2,
        time_range_in_days: int = 180,
    ) -> list[UserEventGist]:
        """Event gists (single facts) semantically close to `query`, most similar first."""
        request = event_pb2.SearchEventGistsRequest(
            user_id=self.user_id,
            query=query,
            topk=topk,
            similarity_threshold=similarity_threshold,
            time_range_in_days=time_range_in_days,
        )
        reply = await self.client._call(self.client._rpc.events.SearchEventGists, request)
        return [_convert.gist(g) for g in reply.gists]

    async def search_event_by_tags(
        self,
        tags: Sequence[str] | None = None,
        tag_values: Mapping[str, str] | None = None,
        topk: int = 10,
    ) -> list[UserEvent]:
        """Events carrying all `tags` (any value) and all `tag_values` (exactly)."""
        request = event_pb2.SearchEventsByTagsRequest(
            user_id=self.user_id,
            tags=",".join(tags) if tags else None,
            tag_values=",".join(f"{k}={v}" for k, v in tag_values.items()) if tag_values else None,
            topk=topk,
        )
        reply = await self.client._call(self.client._rpc.events.SearchEventsByTags, request)
        return [_convert.event(e) for e in reply.events]

    # -- context ----------------------------------------------------------------------------

    async def context(
        self,
        max_token_size: int = 1000,
        prefer_topics: Sequence[str] | None = None,
        only_topics: Sequence[str] | None = None,
        max_subtopic_size: int | None = None,
        topic_limits: Mapping[str, int] | None = None,
        profile_event_ratio: float | None = None,
        require_event_summary: bool | None = None,
        chats: Sequence[Message] | None = None,
        event_similarity_threshold: float | None = None,
        customize_context_prompt: str | None = None,
        time_range_in_days: int | None = None,
        full_profile_and_only_search_event: bool | None = None,
        fill_window_with_events: bool | None = None,
    ) -> str:
        """The memory prompt (profile and event sections) to put in an LLM call."""
        request = profile_pb2.GetContextRequest(
            user_id=self.user_id,
            max_token_size=max_token_size,
            prefer_topics=prefer_topics or (),
            only_topics=only_topics or (),
            max_subtopic_size=max_subtopic_size,
            topic_limits_json=_limits_json(topic_limits),
            profile_event_ratio=profile_event_ratio,
            require_event_summary=require_event_summary,
            chats_str=_chats_json(chats),
            event_similarity_threshold=event_similarity_threshold,
            time_range_in_days=time_range_in_days,
            customize_context_prompt=customize_context_prompt,
            full_profile_and_only_search_event=full_profile_and_only_search_event,
            fill_window_with_events=fill_window_with_events,
        )
        reply = await self.client._call(self.client._rpc.profiles.GetContext, request)
        return reply.context
