"""Query string → request message fields."""

from __future__ import annotations

from collections.abc import Collection
from urllib.parse import parse_qsl

from google.protobuf.message import Message

from .errors import DecodeError
from .fields import descriptor_of, resolve_path, set_from_texts

MAX_QUERY_FIELDS = 1000


def parse_query(query_string: bytes | str) -> dict[str, list[str]]:
    """Decoded values per key, in order; `&&` empty pairs are skipped and `+` is a space."""
    text = (
        query_string.decode("utf-8", errors="replace")
        if isinstance(query_string, bytes)
        else query_string
    )
    try:
        pairs = parse_qsl(text, keep_blank_values=True, max_num_fields=MAX_QUERY_FIELDS)
    except ValueError:
        raise DecodeError("query", f"more than {MAX_QUERY_FIELDS} parameters") from None
    grouped: dict[str, list[str]] = {}
    for key, value in pairs:
        grouped.setdefault(key, []).append(value)
    return grouped


def apply_query(
    message: Message,
    params: dict[str, list[str]],
    skip: Collection[str] = (),
) -> None:
    """Sets the request fields the keys name; unknown keys and keys in `skip` are ignored.

    Raises DecodeError when a value does not parse for its field's type.
    """
    for key, texts in params.items():
        if key in skip:
            continue
        chain = resolve_path(descriptor_of(message), key)
        if chain is None:
            continue
        set_from_texts(message, chain, texts, key)
