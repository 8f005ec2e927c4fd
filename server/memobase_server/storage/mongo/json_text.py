"""Client-shaped JSON objects (a user's data, a blob's fields) stored as JSON text. Nothing
selects by their contents, and as text any key is fine (`a.b`, `$x`, which MongoDB and FerretDB
refuse as field names) and a NUL character is escaped (PostgreSQL, under FerretDB, stores none).
Documents written before hold the object itself, which reads still accept."""

from __future__ import annotations

import json
from typing import Any

from memobase_server.domain.models import JsonObject


def to_text(value: JsonObject | None) -> str | None:
    if value is None:
        return None
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def from_text(stored: Any) -> JsonObject | None:
    if isinstance(stored, str):
        loaded: JsonObject = json.loads(stored)
        return loaded
    return stored  # type: ignore[no-any-return]
