"""User ids: the service takes UUIDs (v4 or v5); any other string maps to a stable UUID v5."""

from __future__ import annotations

import uuid


def string_to_uuid(s: str, salt: str = "memobase_client") -> str:
    """The UUID v5 the official SDK derives from a string (its OpenAI patch does the same)."""
    return str(uuid.uuid5(uuid.NAMESPACE_DNS, s + salt))


def as_user_id(s: str) -> str:
    """`s` itself when it is a UUID (in canonical form), else `string_to_uuid(s)`."""
    try:
        return str(uuid.UUID(s))
    except ValueError:
        return string_to_uuid(s)
