"""Identifier rules: UUID v4 or v5 strings, as the Memobase SDK expects."""

from __future__ import annotations

import re
import uuid

from memobase_server.domain.errors import InvalidArgument, MalformedRequest

_IDEMPOTENCY_NAMESPACE = uuid.UUID("5f1b0f52-6a1e-4c55-9a53-8d3f6f1f2b7e")
_PROJECT_ID = re.compile(r"^[A-Za-z0-9_]{1,64}$")


def new_id() -> str:
    return str(uuid.uuid4())


def parse_uuid(value: str, what: str) -> str:
    """Returns the canonical (lowercase, hyphenated) form of a v4 or v5 UUID."""
    try:
        parsed = uuid.UUID(value)
    except (ValueError, AttributeError, TypeError):
        raise MalformedRequest(f"{what} must be a UUID, got {value!r:.80}") from None
    if parsed.version not in (4, 5):
        raise MalformedRequest(f"{what} must be a UUID of version 4 or 5, got {value!r:.80}")
    return str(parsed)


def idempotent_id(scope: str, key: str) -> str:
    """A stable id for a client's idempotency key, so a retried write lands on the same id."""
    if not key or len(key) > 256:
        raise InvalidArgument("idempotency_key must be 1 to 256 characters")
    return str(uuid.uuid5(_IDEMPOTENCY_NAMESPACE, f"{scope}\x00{key}"))


def check_project_id(value: str) -> str:
    if not _PROJECT_ID.match(value) or value.startswith("__"):
        raise InvalidArgument(
            "project_id must be 1 to 64 letters, digits or underscores, not starting with '__'"
        )
    return value
