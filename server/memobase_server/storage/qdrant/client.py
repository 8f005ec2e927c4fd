"""GistIndex through `qdrant-client`: against a Qdrant server by URL (the scale-out mode), or in
the client's local mode (a directory or ":memory:"), which runs the same adapter code in tests.

The collection is named for the vector space (`event_gists__<model-slug>__<dim>`), cosine
distance, with keyword payload indexes on project_id, user_id and event_id and a float index on
created_at_ts (epoch seconds; the `since` filter is a range on it).

Against a server, a connection failure, a timeout or a 5xx answer becomes
`Unavailable("The vector index is unavailable; retry later")`.

Local mode is brute force in Python and its "async" methods run numpy on the calling loop
(measured: tens of milliseconds per filtered query at a few thousand points). An index built by
`connect_qdrant_gist_index` for a path or ":memory:" therefore runs every client call on a
private event loop in its own thread, so the caller's loop stays responsive; calls are then
serialised, which local mode needs anyway. Local mode ignores payload indexes (and warns when
asked for one), so none are requested there. A local directory serves one process at a time
(qdrant-client locks it): IndexLockedError otherwise.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Coroutine, Sequence
from datetime import datetime
from typing import Any, TypeVar

import grpc
from qdrant_client import AsyncQdrantClient, models
from qdrant_client.http.exceptions import ResponseHandlingException, UnexpectedResponse

from memobase_server.domain.errors import Unavailable
from memobase_server.storage.ports import GistHit, GistPoint
from memobase_server.storage.qdrant.common import (
    CREATED_AT_TS,
    EVENT_ID,
    HIT_FIELDS,
    PROJECT_ID,
    USER_ID,
    IndexLockedError,
    checked_vector,
    collection_name,
    epoch_seconds,
    hit_of,
    payload_of,
    point_id,
)

T = TypeVar("T")

log = logging.getLogger("memobase.qdrant")

_GRPC_DOWN = (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED)

_UPSERT_BATCH = 256
_INDEXES: tuple[tuple[str, models.PayloadSchemaType], ...] = (
    (PROJECT_ID, models.PayloadSchemaType.KEYWORD),
    (USER_ID, models.PayloadSchemaType.KEYWORD),
    (EVENT_ID, models.PayloadSchemaType.KEYWORD),
    (CREATED_AT_TS, models.PayloadSchemaType.FLOAT),
)


class _LoopThread:
    """An event loop in a daemon thread; coroutines submitted to it run there."""

    def __init__(self, name: str) -> None:
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name=name, daemon=True)
        self._thread.start()

    async def run(self, coro: Coroutine[Any, Any, T]) -> T:
        return await asyncio.wrap_future(asyncio.run_coroutine_threadsafe(coro, self._loop))

    def stop(self) -> None:
        if self._loop.is_closed():
            return
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10)
        if not self._thread.is_alive():
            self._loop.close()


class QdrantGistIndex:
    """The gist index of one vector space in a Qdrant collection.

    `local=True` marks a client in local mode: its calls then run on a private loop thread and
    payload indexes are not requested. The index owns the client and closes it on `close()`.
    """

    def __init__(
        self,
        client: AsyncQdrantClient,
        model_name: str,
        dim: int,
        *,
        local: bool = False,
        timeout: int | None = None,
    ) -> None:
        self._client = client
        self._dim = dim
        self._collection = collection_name(model_name, dim)
        self._local = local
        self._timeout = timeout
        self._runner = _LoopThread("qdrant-local") if local else None
        self._closed = False

    @property
    def collection(self) -> str:
        return self._collection

    async def _call(self, coro: Coroutine[Any, Any, T]) -> T:
        if self._closed:
            coro.close()
            raise RuntimeError("the gist index is closed")
        if self._runner is not None:
            return await self._runner.run(coro)
        try:
            return await coro
        except (ResponseHandlingException, grpc.aio.AioRpcError) as exc:
            if isinstance(exc, grpc.aio.AioRpcError) and exc.code() not in _GRPC_DOWN:
                raise
            log.warning("Qdrant request failed: %s", type(exc).__name__)
            raise Unavailable("The vector index is unavailable; retry later") from None
        except UnexpectedResponse as exc:
            if exc.status_code is None or exc.status_code < 500:
                raise
            log.warning("Qdrant request failed: HTTP %s", exc.status_code)
            raise Unavailable("The vector index is unavailable; retry later") from None

    async def open(self) -> None:
        await self._call(self._open())

    async def _open(self) -> None:
        client, name = self._client, self._collection
        if not await client.collection_exists(name):
            try:
                await client.create_collection(
                    name,
                    vectors_config=models.VectorParams(
                        size=self._dim, distance=models.Distance.COSINE
                    ),
                    timeout=self._timeout,
                )
            except UnexpectedResponse as exc:
                if exc.status_code != 409:  # created meanwhile by another process: fine
                    raise
        else:
            params = (await client.get_collection(name)).config.params.vectors
            size = params.size if isinstance(params, models.VectorParams) else None
            if size != self._dim:
                raise RuntimeError(
                    f"collection {name} holds vectors of size {size}, expected {self._dim}"
                )
        if self._local:
            return
        present = (await client.get_collection(name)).payload_schema
        for field, schema in _INDEXES:
            if field not in present:
                await client.create_payload_index(
                    name, field, field_schema=schema, wait=True, timeout=self._timeout
                )

    async def close(self) -> None:
        if self._closed:
            return
        try:
            await self._call(self._client.close())
        finally:
            self._closed = True
            if self._runner is not None:
                self._runner.stop()

    async def upsert(self, points: Sequence[GistPoint]) -> None:
        if points:
            await self._call(self._upsert(list(points)))

    async def _upsert(self, points: list[GistPoint]) -> None:
        # Built here, so in local mode the conversion runs on the index's thread too.
        structs = [
            models.PointStruct(
                id=point_id(p.gist_id),
                vector=checked_vector(p.vector, self._dim),
                payload=payload_of(p),
            )
            for p in points
        ]
        for start in range(0, len(structs), _UPSERT_BATCH):
            await self._client.upsert(
                self._collection,
                structs[start : start + _UPSERT_BATCH],
                wait=True,
                timeout=self._timeout,
            )

    async def delete_event(self, project_id: str, user_id: str, event_id: str) -> None:
        await self._delete(_filter(project_id, user_id, event_id=event_id))

    async def delete_user(self, project_id: str, user_id: str) -> None:
        await self._delete(_filter(project_id, user_id))

    async def _delete(self, where: models.Filter) -> None:
        await self._call(
            self._client.delete(
                self._collection,
                models.FilterSelector(filter=where),
                wait=True,
                timeout=self._timeout,
            )
        )

    async def search(
        self,
        project_id: str,
        user_id: str,
        vector: Sequence[float],
        *,
        limit: int,
        min_similarity: float,
        since: datetime | None,
    ) -> list[GistHit]:
        if limit <= 0:
            return []
        response = await self._call(
            self._client.query_points(
                self._collection,
                query=checked_vector(vector, self._dim),
                query_filter=_filter(project_id, user_id, since=since),
                limit=limit,
                with_payload=models.PayloadSelectorInclude(include=HIT_FIELDS),
                with_vectors=False,
                score_threshold=min_similarity,
                timeout=self._timeout,
            )
        )
        # Qdrant's threshold keeps scores equal to it; the port promises strictly greater.
        return [hit_of(p.payload, p.score) for p in response.points if p.score > min_similarity]

    async def count(self, project_id: str | None = None) -> int:
        where = None if project_id is None else _filter(project_id)
        result = await self._call(
            self._client.count(
                self._collection, count_filter=where, exact=True, timeout=self._timeout
            )
        )
        return result.count


def connect_qdrant_gist_index(
    model_name: str,
    dim: int,
    *,
    url: str | None = None,
    path: str | None = None,
    api_key: str | None = None,
    timeout: int = 10,
    prefer_grpc: bool = False,
) -> QdrantGistIndex:
    """A Qdrant server by `url`, or local mode in the directory `path` (":memory:" for none).
    Call `open()` on the result before use."""
    if (url is None) == (path is None):
        raise ValueError("give exactly one of url= (a Qdrant server) or path= (local mode)")
    if url is not None:
        # No version check: it is a blocking HTTP call in the constructor, on the caller's loop.
        client = AsyncQdrantClient(
            url=url,
            api_key=api_key,
            timeout=timeout,
            prefer_grpc=prefer_grpc,
            check_compatibility=False,
        )
        return QdrantGistIndex(client, model_name, dim, timeout=timeout)
    try:
        if path == ":memory:":
            client = AsyncQdrantClient(location=":memory:")
        else:
            # Every call runs on the index's own loop thread, not the one that opened SQLite.
            client = AsyncQdrantClient(path=path, force_disable_check_same_thread=True)
    except RuntimeError as exc:
        if "already accessed" in str(exc):
            raise IndexLockedError(
                f"the gist index {path} is in use by another process; local mode serves one "
                "process, use a Qdrant server to share it"
            ) from None
        raise
    return QdrantGistIndex(client, model_name, dim, local=True)


def _filter(
    project_id: str,
    user_id: str | None = None,
    *,
    event_id: str | None = None,
    since: datetime | None = None,
) -> models.Filter:
    must: list[models.Condition] = [
        models.FieldCondition(key=PROJECT_ID, match=models.MatchValue(value=project_id))
    ]
    if user_id is not None:
        must.append(models.FieldCondition(key=USER_ID, match=models.MatchValue(value=user_id)))
    if event_id is not None:
        must.append(models.FieldCondition(key=EVENT_ID, match=models.MatchValue(value=event_id)))
    if since is not None:
        must.append(
            models.FieldCondition(key=CREATED_AT_TS, range=models.Range(gt=epoch_seconds(since)))
        )
    return models.Filter(must=must)
