"""The synchronous client: the asynchronous one run on a private event loop in a daemon thread.

Each method submits the matching coroutine of `AsyncMemobaseClient` / `AsyncUser` to that loop
and waits for it, so both clients share one implementation (deadlines, retries, errors). The
client is thread-safe: any number of threads may call it at once.
"""

from __future__ import annotations

import asyncio
import threading
import weakref
from collections.abc import Coroutine, Mapping, Sequence
from types import TracebackType
from typing import Any, Self, TypeVar

import grpc

from memobase_grpc.aio import DEFAULT_RETRIES, DEFAULT_TIMEOUT, AsyncMemobaseClient, AsyncUser
from memobase_grpc.types import (
    Blob,
    BlobType,
    BufferStatus,
    Message,
    UserData,
    UserEvent,
    UserEventGist,
    UserProfile,
)

_T = TypeVar("_T")


def _stop_loop(loop: asyncio.AbstractEventLoop, thread: threading.Thread) -> None:
    if not loop.is_closed():
        loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout=5)
        if not thread.is_alive():
            loop.close()


class _LoopThread:
    """An event loop running forever in a daemon thread."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(
            target=self.loop.run_forever, name="memobase-grpc-client", daemon=True
        )
        self.thread.start()
        self._finalizer = weakref.finalize(self, _stop_loop, self.loop, self.thread)

    def run(self, coro: Coroutine[Any, Any, _T]) -> _T:
        if threading.current_thread() is self.thread:
            coro.close()
            raise RuntimeError("the synchronous client cannot be called from its own loop")
        future = asyncio.run_coroutine_threadsafe(coro, self.loop)
        try:
            return future.result()
        except BaseException:
            future.cancel()
            raise

    def stop(self) -> None:
        self._finalizer()


class MemobaseClient:
    """Synchronous client for memobase-server's gRPC API (same arguments as
    `AsyncMemobaseClient`). Close it with `close()` or use it as a context manager."""

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
        self.aio = AsyncMemobaseClient(
            target,
            token,
            timeout=timeout,
            retries=retries,
            backoff=backoff,
            max_backoff=max_backoff,
            credentials=credentials,
            options=options,
            interceptors=interceptors,
        )
        self._loop = _LoopThread()

    def _run(self, coro: Coroutine[Any, Any, _T]) -> _T:
        return self._loop.run(coro)

    def close(self) -> None:
        """Closes the channel and stops the client's loop."""
        if self._loop.loop.is_closed():
            return
        try:
            self._run(self.aio.close())
        finally:
            self._loop.stop()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def _user(self, user: AsyncUser) -> User:
        return User(user, self)

    def ping(self) -> bool:
        return self._run(self.aio.ping())

    def add_user(self, data: Mapping[str, Any] | None = None, id: str | None = None) -> str:
        return self._run(self.aio.add_user(data, id))

    def get_user(self, user_id: str, no_get: bool = False) -> User:
        return self._user(self._run(self.aio.get_user(user_id, no_get)))

    def get_user_data(self, user_id: str) -> UserData:
        return self._run(self.aio.get_user_data(user_id))

    def get_or_create_user(self, user_id: str) -> User:
        return self._user(self._run(self.aio.get_or_create_user(user_id)))

    def update_user(self, user_id: str, data: Mapping[str, Any] | None = None) -> str:
        return self._run(self.aio.update_user(user_id, data))

    def delete_user(self, user_id: str) -> bool:
        return self._run(self.aio.delete_user(user_id))


class User:
    """One user's memory (synchronous); see `AsyncUser` for each method."""

    def __init__(self, user: AsyncUser, client: MemobaseClient) -> None:
        self.aio = user
        self._client = client

    @property
    def user_id(self) -> str:
        return self.aio.user_id

    @property
    def data(self) -> UserData | None:
        return self.aio.data

    @property
    def fields(self) -> dict[str, Any] | None:
        return self.aio.fields

    def __repr__(self) -> str:
        return f"{type(self).__name__}(user_id={self.user_id!r})"

    def _run(self, coro: Coroutine[Any, Any, _T]) -> _T:
        return self._client._run(coro)

    def insert(self, blob: Blob, sync: bool = False, *, idempotency_key: str | None = None) -> str:
        return self._run(self.aio.insert(blob, sync, idempotency_key=idempotency_key))

    def get(self, blob_id: str) -> Blob:
        return self._run(self.aio.get(blob_id))

    def get_all(
        self, blob_type: BlobType | str = BlobType.chat, page: int = 0, page_size: int = 10
    ) -> list[str]:
        return self._run(self.aio.get_all(blob_type, page, page_size))

    def delete(self, blob_id: str) -> bool:
        return self._run(self.aio.delete(blob_id))

    def flush(self, blob_type: BlobType | str = BlobType.chat, sync: bool = False) -> bool:
        return self._run(self.aio.flush(blob_type, sync))

    def buffer(
        self, blob_type: BlobType | str = BlobType.chat, status: BufferStatus = "idle"
    ) -> list[str]:
        return self._run(self.aio.buffer(blob_type, status))

    def profile(
        self,
        max_token_size: int = 1000,
        prefer_topics: Sequence[str] | None = None,
        only_topics: Sequence[str] | None = None,
        max_subtopic_size: int | None = None,
        topic_limits: Mapping[str, int] | None = None,
        chats: Sequence[Message] | None = None,
        topk: int | None = None,
    ) -> list[UserProfile]:
        return self._run(
            self.aio.profile(
                max_token_size,
                prefer_topics,
                only_topics,
                max_subtopic_size,
                topic_limits,
                chats,
                topk,
            )
        )

    def add_profile(self, content: str, topic: str, sub_topic: str) -> str:
        return self._run(self.aio.add_profile(content, topic, sub_topic))

    def update_profile(self, profile_id: str, content: str, topic: str, sub_topic: str) -> bool:
        return self._run(self.aio.update_profile(profile_id, content, topic, sub_topic))

    def delete_profile(self, profile_id: str) -> bool:
        return self._run(self.aio.delete_profile(profile_id))

    def event(
        self, topk: int = 10, max_token_size: int | None = None, need_summary: bool = False
    ) -> list[UserEvent]:
        return self._run(self.aio.event(topk, max_token_size, need_summary))

    def update_event(self, event_id: str, event_data: Mapping[str, Any]) -> bool:
        return self._run(self.aio.update_event(event_id, event_data))

    def delete_event(self, event_id: str) -> bool:
        return self._run(self.aio.delete_event(event_id))

    def search_event(
        self,
        query: str,
        topk: int = 10,
        similarity_threshold: float = 0.2,
        time_range_in_days: int = 180,
    ) -> list[UserEvent]:
        return self._run(
            self.aio.search_event(query, topk, similarity_threshold, time_range_in_days)
        )

    def search_event_gist(
        self,
        query: str,
        topk: int = 10,
        similarity_threshold: float = 0.2,
        time_range_in_days: int = 180,
    ) -> list[UserEventGist]:
        return self._run(
            self.aio.search_event_gist(query, topk, similarity_threshold, time_range_in_days)
        )

    def search_event_by_tags(
        self,
        tags: Sequence[str] | None = None,
        tag_values: Mapping[str, str] | None = None,
        topk: int = 10,
    ) -> list[UserEvent]:
        return self._run(self.aio.search_event_by_tags(tags, tag_values, topk))

    def context(
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
        return self._run(
            self.aio.context(
                max_token_size,
                prefer_topics,
                only_topics,
                max_subtopic_size,
                topic_limits,
                profile_event_ratio,
                require_event_summary,
                chats,
                event_similarity_threshold,
                customize_context_prompt,
                time_range_in_days,
                full_profile_and_only_search_event,
                fill_window_with_events,
            )
        )
