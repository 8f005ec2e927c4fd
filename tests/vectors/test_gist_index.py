"""The GistIndex contract, run over every adapter: the in-process engine (qdrant-edge) and
qdrant-client in local mode (in memory and in a directory). No server is needed."""

from __future__ import annotations

import asyncio
import math
import os
import pathlib
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from datetime import UTC, datetime, timedelta

import pytest
from qdrant_client import AsyncQdrantClient

from memobase_server.domain.errors import Unavailable
from memobase_server.storage.ports import GistIndex, GistPoint
from memobase_server.storage.qdrant.client import QdrantGistIndex, connect_qdrant_gist_index
from memobase_server.storage.qdrant.common import IndexLockedError, collection_name
from memobase_server.storage.qdrant.edge import EdgeGistIndex
from tests import servers

DIM = 8
MODEL = "test-model"
T0 = datetime(2026, 1, 1, 12, 0, 0, 123000, tzinfo=UTC)

Opener = Callable[[str, int], Awaitable[GistIndex]]
ADAPTERS = ["edge", "qdrant-memory", "qdrant-path"]


def unit(*values: float) -> list[float]:
    vector = [*values, *([0.0] * (DIM - len(values)))]
    norm = math.sqrt(sum(v * v for v in vector))
    return [v / norm for v in vector]


def gist(
    user_id: str,
    vector: Sequence[float],
    *,
    project_id: str = "proj_a",
    event_id: str | None = None,
    created_at: datetime = T0,
    content: str = "a gist",
    gist_id: str | None = None,
    tags: tuple[str, ...] = ("topic",),
) -> GistPoint:
    return GistPoint(
        gist_id=gist_id or str(uuid.uuid4()),
        project_id=project_id,
        user_id=user_id,
        event_id=event_id or str(uuid.uuid4()),
        created_at=created_at,
        tags=tags,
        content=content,
        vector=vector,
    )


async def search(
    index: GistIndex,
    user_id: str,
    vector: Sequence[float],
    *,
    project_id: str = "proj_a",
    limit: int = 10,
    min_similarity: float = 0.0,
    since: datetime | None = None,
) -> list[str]:
    hits = await index.search(
        project_id, user_id, vector, limit=limit, min_similarity=min_similarity, since=since
    )
    return [h.content for h in hits]


@pytest.fixture(params=ADAPTERS)
async def opener(request: pytest.FixtureRequest, tmp_path: pathlib.Path) -> AsyncIterator[Opener]:
    """Opens indexes of the adapter under test in one store; closes them all afterwards."""
    opened: list[GistIndex] = []
    kind: str = request.param

    async def open_index(model_name: str, dim: int) -> GistIndex:
        index: GistIndex
        if kind == "edge":
            index = EdgeGistIndex(tmp_path / "edge", model_name, dim)
        elif kind == "qdrant-memory":
            index = connect_qdrant_gist_index(model_name, dim, path=":memory:")
        else:
            index = connect_qdrant_gist_index(model_name, dim, path=str(tmp_path / "qdrant"))
        await index.open()
        opened.append(index)
        return index

    yield open_index
    for index in opened:
        await index.close()


@pytest.fixture
async def index(opener: Opener) -> GistIndex:
    return await opener(MODEL, DIM)


async def test_search_returns_the_users_points_most_similar_first(index: GistIndex) -> None:
    event_id = str(uuid.uuid4())
    near = gist("u1", unit(1, 0.1), content="near", event_id=event_id, tags=("a", "b"))
    await index.upsert([near, gist("u1", unit(1, 1), content="mid"), gist("u1", unit(0, 1))])

    hits = await index.search("proj_a", "u1", unit(1), limit=10, min_similarity=0.5, since=None)

    assert [h.content for h in hits] == ["near", "mid"]
    first = hits[0]
    assert (first.gist_id, first.event_id, first.created_at) == (near.gist_id, event_id, T0)
    assert first.similarity == pytest.approx(1 / math.sqrt(1.01), abs=1e-5)
    assert hits[1].similarity == pytest.approx(1 / math.sqrt(2), abs=1e-5)


async def test_other_users_and_projects_are_never_returned(index: GistIndex) -> None:
    same = unit(1, 2, 3)
    await index.upsert(
        [
            gist("u1", same, content="mine"),
            gist("u2", same, content="other user"),
            gist("u1", same, project_id="proj_b", content="other project"),
        ]
    )

    assert await search(index, "u1", same) == ["mine"]
    assert await search(index, "u2", same) == ["other user"]
    assert await search(index, "u1", same, project_id="proj_b") == ["other project"]
    assert await search(index, "u3", same) == []


async def test_since_keeps_only_later_points(index: GistIndex) -> None:
    await index.upsert(
        [
            gist("u1", unit(1), content="old", created_at=T0 - timedelta(days=2)),
            gist("u1", unit(1), content="at", created_at=T0),
            gist("u1", unit(1), content="new", created_at=T0 + timedelta(seconds=1)),
        ]
    )

    assert await search(index, "u1", unit(1), since=T0) == ["new"]
    assert sorted(await search(index, "u1", unit(1), since=T0 - timedelta(days=1))) == [
        "at",
        "new",
    ]
    # A naive datetime means UTC.
    assert await search(index, "u1", unit(1), since=T0.replace(tzinfo=None)) == ["new"]


async def test_min_similarity_and_limit(index: GistIndex) -> None:
    await index.upsert(
        [gist("u1", unit(1, 0.01 * i), content=f"close {i}") for i in range(5)]
        + [gist("u1", unit(0, 1), content="orthogonal"), gist("u1", unit(-1), content="opposite")]
    )

    above_zero = await search(index, "u1", unit(1), min_similarity=0.0)
    assert above_zero == [f"close {i}" for i in range(5)]
    assert await search(index, "u1", unit(1), min_similarity=-1.5, limit=10) == [
        *(f"close {i}" for i in range(5)),
        "orthogonal",
        "opposite",
    ]
    assert await search(index, "u1", unit(1), min_similarity=0.9999) == ["close 0", "close 1"]
    assert await search(index, "u1", unit(1), limit=2) == ["close 0", "close 1"]
    assert await search(index, "u1", unit(1), limit=0) == []


async def test_upsert_is_idempotent_and_replaces(index: GistIndex) -> None:
    point = gist("u1", unit(1), content="first")
    await index.upsert([point])
    await index.upsert([point])
    assert await index.count() == 1

    changed = GistPoint(
        gist_id=point.gist_id,
        project_id=point.project_id,
        user_id=point.user_id,
        event_id=point.event_id,
        created_at=point.created_at,
        tags=(),
        content="second",
        vector=unit(0, 1),
    )
    await index.upsert([changed])
    assert await index.count() == 1
    assert await search(index, "u1", unit(0, 1), min_similarity=0.99) == ["second"]
    assert await search(index, "u1", unit(1), min_similarity=0.5) == []


async def test_gist_ids_need_not_be_uuids(index: GistIndex) -> None:
    await index.upsert([gist("u1", unit(1), gist_id="event-7:gist-2", content="x")])
    await index.upsert([gist("u1", unit(1), gist_id="event-7:gist-2", content="y")])
    hits = await index.search("proj_a", "u1", unit(1), limit=5, min_similarity=0, since=None)
    assert [(h.gist_id, h.content) for h in hits] == [("event-7:gist-2", "y")]


async def test_delete_event(index: GistIndex) -> None:
    event_id = str(uuid.uuid4())
    await index.upsert(
        [
            gist("u1", unit(1), event_id=event_id, content="e1 a"),
            gist("u1", unit(1, 1), event_id=event_id, content="e1 b"),
            gist("u1", unit(1), content="e2"),
        ]
    )

    await index.delete_event("proj_a", "u1", event_id)

    assert await search(index, "u1", unit(1)) == ["e2"]
    assert await index.count() == 1


async def test_delete_user_removes_only_that_user(index: GistIndex) -> None:
    await index.upsert(
        [
            *(gist("u1", unit(1, i)) for i in range(3)),
            gist("u2", unit(1), content="u2"),
            gist("u1", unit(1), project_id="proj_b", content="u1 in b"),
        ]
    )
    assert await index.count() == 5

    await index.delete_user("proj_a", "u1")

    assert await search(index, "u1", unit(1)) == []
    assert await search(index, "u2", unit(1)) == ["u2"]
    assert await search(index, "u1", unit(1), project_id="proj_b") == ["u1 in b"]
    assert await index.count() == 2


async def test_count_per_project(index: GistIndex) -> None:
    assert await index.count() == 0
    await index.upsert(
        [gist("u1", unit(1)), gist("u2", unit(1)), gist("u1", unit(1), project_id="proj_b")]
    )
    assert await index.count() == 3
    assert await index.count("proj_a") == 2
    assert await index.count("proj_b") == 1
    assert await index.count("proj_c") == 0


async def test_a_vector_of_another_dimension_is_refused(index: GistIndex) -> None:
    with pytest.raises(ValueError, match="dimension"):
        await index.upsert([gist("u1", [1.0, 0.0])])
    with pytest.raises(ValueError, match="dimension"):
        await index.search("proj_a", "u1", [1.0] * (DIM + 1), limit=1, min_similarity=0, since=None)


async def test_upsert_of_many_points_in_one_call(index: GistIndex) -> None:
    # More than one write batch of either adapter (1024 and 256 points).
    await index.upsert([gist(f"u{i % 3}", unit(1, i)) for i in range(1050)])
    assert await index.count() == 1050
    assert len(await search(index, "u0", unit(1), limit=1000)) == 350


@pytest.mark.parametrize("kind", ["edge", "qdrant-path"])
async def test_models_and_dimensions_get_their_own_collections(
    kind: str, tmp_path: pathlib.Path
) -> None:
    spaces = [("model-a", 8), ("model-b", 8), ("model-a", 16)]
    names = {collection_name(model, dim) for model, dim in spaces}
    assert len(names) == 3
    assert collection_name("Model-A", 8) != collection_name("model-a", 8)

    async def use(model: str, dim: int, points: int) -> int:
        index: EdgeGistIndex | QdrantGistIndex
        if kind == "edge":
            index = EdgeGistIndex(tmp_path, model, dim)
        else:
            # Local mode serves one client per directory at a time: open them in turn.
            index = connect_qdrant_gist_index(model, dim, path=str(tmp_path))
        await index.open()
        try:
            vector = [1.0] + [0.0] * (dim - 1)
            await index.upsert([gist("u1", vector) for _ in range(points)])
            return await index.count()
        finally:
            await index.close()

    assert await use("model-a", 8, 1) == 1
    assert await use("model-b", 8, 2) == 2
    assert await use("model-a", 16, 3) == 3
    assert await use("model-a", 8, 0) == 1  # reopened: still there, nothing mixed in

    if kind == "edge":
        entries = await asyncio.to_thread(os.listdir, tmp_path)
        assert {e for e in entries if not e.endswith(".lock")} == names
    else:
        client = AsyncQdrantClient(path=str(tmp_path))
        try:
            listed = {c.name for c in (await client.get_collections()).collections}
        finally:
            await client.close()
        assert listed == names


async def test_edge_shards_of_two_models_open_side_by_side(tmp_path: pathlib.Path) -> None:
    a = EdgeGistIndex(tmp_path, "model-a", DIM)
    b = EdgeGistIndex(tmp_path, "model-b", DIM)
    await asyncio.gather(a.open(), b.open())
    try:
        await a.upsert([gist("u1", unit(1), content="in a")])
        assert await search(a, "u1", unit(1)) == ["in a"]
        assert await search(b, "u1", unit(1)) == []
    finally:
        await a.close()
        await b.close()


async def test_edge_directory_serves_one_index_at_a_time(tmp_path: pathlib.Path) -> None:
    first = EdgeGistIndex(tmp_path, MODEL, DIM)
    await first.open()
    second = EdgeGistIndex(tmp_path, MODEL, DIM)
    with pytest.raises(IndexLockedError, match="in use by another process"):
        await second.open()
    await second.close()
    await first.close()

    again = EdgeGistIndex(tmp_path, MODEL, DIM)
    await again.open()  # released by close()
    await again.close()


async def test_qdrant_local_directory_serves_one_client_at_a_time(tmp_path: pathlib.Path) -> None:
    first = connect_qdrant_gist_index(MODEL, DIM, path=str(tmp_path))
    await first.open()
    try:
        with pytest.raises(IndexLockedError):
            connect_qdrant_gist_index(MODEL, DIM, path=str(tmp_path))
    finally:
        await first.close()


def test_the_factory_wants_one_location() -> None:
    with pytest.raises(ValueError, match="exactly one"):
        connect_qdrant_gist_index(MODEL, DIM)
    with pytest.raises(ValueError, match="exactly one"):
        connect_qdrant_gist_index(MODEL, DIM, url="http://127.0.0.1:6333", path=":memory:")


async def test_an_unreachable_qdrant_server_is_unavailable() -> None:
    index = connect_qdrant_gist_index(
        MODEL, DIM, url=f"http://127.0.0.1:{servers.free_port()}", timeout=2
    )
    try:
        with pytest.raises(Unavailable, match="vector index is unavailable"):
            await index.open()
        with pytest.raises(Unavailable, match="vector index is unavailable"):
            await index.search("proj_a", "u1", unit(1), limit=1, min_similarity=0, since=None)
    finally:
        await index.close()


async def test_edge_optimize_keeps_the_data(tmp_path: pathlib.Path) -> None:
    index = EdgeGistIndex(tmp_path, MODEL, DIM)
    await index.open()
    try:
        await index.upsert([gist(f"u{i % 2}", unit(1, i), content=f"g{i}") for i in range(300)])
        await index.delete_user("proj_a", "u0")
        await index.optimize()
        assert await index.count() == 150
        assert len(await search(index, "u1", unit(1), limit=500)) == 150
        assert await search(index, "u0", unit(1)) == []
    finally:
        await index.close()

    reopened = EdgeGistIndex(tmp_path, MODEL, DIM)
    await reopened.open()
    try:
        assert await reopened.count() == 150
    finally:
        await reopened.close()
