"""Deterministic embeddings: a hashed bag of words and character 3-grams, L2-normalised.

Texts that share words get a clearly positive cosine similarity; unrelated texts land near 0
(each feature goes to a hashed dimension with a hashed sign, so collisions cancel out).
"""

from __future__ import annotations

import base64
import functools
import hashlib
import math
import re
import struct
from collections.abc import Sequence

DEFAULT_DIMENSIONS = 1536
_WORD = re.compile(r"\w+")
_WORD_WEIGHT = 1.0
_TRIGRAM_WEIGHT = 0.3


@functools.lru_cache(maxsize=65536)
def _feature(token: str, dimensions: int) -> tuple[int, float]:
    digest = hashlib.blake2b(token.encode(), digest_size=8).digest()
    value = int.from_bytes(digest, "little")
    return value % dimensions, 1.0 if (value >> 63) & 1 else -1.0


def embed_text(text: str, dimensions: int = DEFAULT_DIMENSIONS) -> list[float]:
    """A unit vector of `dimensions` floats; the same text always gives the same vector."""
    if dimensions < 1:
        raise ValueError("dimensions must be positive")
    vector = [0.0] * dimensions
    for word in _WORD.findall(text.lower()):
        index, sign = _feature(f"w:{word}", dimensions)
        vector[index] += sign * _WORD_WEIGHT
        padded = f"#{word}#"
        for start in range(len(padded) - 2):
            index, sign = _feature(f"g:{padded[start : start + 3]}", dimensions)
            vector[index] += sign * _TRIGRAM_WEIGHT
    norm = math.sqrt(sum(x * x for x in vector))
    if norm == 0.0:  # no words at all: a fixed unit vector
        vector[_feature("empty", dimensions)[0]] = 1.0
        return vector
    return [x / norm for x in vector]


def cosine(a: Sequence[float], b: Sequence[float]) -> float:
    dot = sum(x * y for x, y in zip(a, b, strict=True))
    norms = math.sqrt(sum(x * x for x in a)) * math.sqrt(sum(y * y for y in b))
    return dot / norms if norms else 0.0


def to_base64(vector: Sequence[float]) -> str:
    """OpenAI's base64 encoding: the little-endian float32 bytes of the vector."""
    return base64.b64encode(struct.pack(f"<{len(vector)}f", *vector)).decode("ascii")


def from_base64(encoded: str) -> list[float]:
    raw = base64.b64decode(encoded)
    return list(struct.unpack(f"<{len(raw) // 4}f", raw))
