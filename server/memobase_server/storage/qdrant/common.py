"""What both Qdrant adapters share: collection names, point ids, the payload of a gist and the
way a hit is read back, so the embedded engine and a Qdrant server hold the same data."""

from __future__ import annotations

import hashlib
import math
import re
import uuid
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from memobase_server.storage.ports import GistHit, GistPoint

COLLECTION_PREFIX = "event_gists"

# Payload keys. `created_at` is the ISO 8601 text (UTC) for people and Qdrant's datetime type;
# `created_at_ts` is the same instant in epoch seconds, which the range filter of `since` uses.
PROJECT_ID = "project_id"
USER_ID = "user_id"
EVENT_ID = "event_id"
GIST_ID = "gist_id"
CREATED_AT = "created_at"
CREATED_AT_TS = "created_at_ts"
TAGS = "tags"
CONTENT = "content"

# Ids derived from a gist id that is not itself a UUID (Qdrant accepts only UUIDs and integers).
_POINT_NAMESPACE = uuid.UUID("0d8d6a8e-2f55-4d0c-9a4e-6f3f5b2f4b71")
_SLUG_UNSAFE = re.compile(r"[^a-z0-9]+")


class IndexLockedError(RuntimeError):
    """An embedded index's directory is held by another process (or another open index)."""


def collection_name(model_name: str, dim: int) -> str:
    """`event_gists__<model-slug>__<dim>`: one collection per vector space, so a changed model or
    dimension never mixes vectors. The slug is lower-cased and so lossy; a short hash of the exact
    model name keeps two names that slug alike apart."""
    if dim < 1:
        raise ValueError(f"vector dimension must be positive, got {dim}")
    if not model_name:
        raise ValueError("model_name must not be empty")
    slug = _SLUG_UNSAFE.sub("-", model_name.lower()).strip("-")[:48] or "model"
    digest = hashlib.sha256(model_name.encode()).hexdigest()[:8]
    return f"{COLLECTION_PREFIX}__{slug}-{digest}__{dim}"


def point_id(gist_id: str) -> str:
    """The Qdrant point id of a gist: the gist id itself when it is a UUID, else a UUID v5 of it."""
    try:
        return str(uuid.UUID(gist_id))
    except ValueError:
        return str(uuid.uuid5(_POINT_NAMESPACE, gist_id))


def as_utc(moment: datetime) -> datetime:
    """Naive datetimes are taken as UTC, as everywhere in this service."""
    if moment.tzinfo is None:
        return moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC)


def epoch_seconds(moment: datetime) -> float:
    return as_utc(moment).timestamp()


def checked_vector(vector: Sequence[float], dim: int) -> list[float]:
    """The vector as a list, once its length and values are known good (ValueError if not)."""
    values = vector if isinstance(vector, list) else list(vector)
    if len(values) != dim:
        raise ValueError(f"vector has dimension {len(values)}, the index expects {dim}")
    try:
        finite = all(map(math.isfinite, values))
    except TypeError:
        finite = False
    if not finite:
        raise ValueError("vector has a value that is not a finite number")
    return values


def payload_of(point: GistPoint) -> dict[str, Any]:
    created_at = as_utc(point.created_at)
    return {
        PROJECT_ID: point.project_id,
        USER_ID: point.user_id,
        EVENT_ID: point.event_id,
        GIST_ID: point.gist_id,
        CREATED_AT: created_at.isoformat(),
        CREATED_AT_TS: created_at.timestamp(),
        TAGS: list(point.tags),
        CONTENT: point.content,
    }


# Only what a hit needs travels back from the index.
HIT_FIELDS = [GIST_ID, EVENT_ID, CONTENT, CREATED_AT, CREATED_AT_TS]


def _created_at(data: Mapping[str, Any]) -> datetime:
    text = data.get(CREATED_AT)
    if isinstance(text, str):
        try:
            return as_utc(datetime.fromisoformat(text))
        except ValueError:
            pass
    return datetime.fromtimestamp(float(data.get(CREATED_AT_TS, 0.0)), UTC)


def hit_of(payload: Mapping[str, Any] | None, score: float) -> GistHit:
    data = payload or {}
    return GistHit(
        gist_id=str(data.get(GIST_ID, "")),
        event_id=str(data.get(EVENT_ID, "")),
        content=str(data.get(CONTENT, "")),
        created_at=_created_at(data),
        similarity=float(score),
    )
