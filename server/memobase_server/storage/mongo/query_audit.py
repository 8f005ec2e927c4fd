"""Watches every query this process sends to MongoDB and reports the ones that are not keyed:
a filter that selects by none of `_id`, `user_id` or `due` with a plain equality (see
`database.py`) makes FerretDB read the whole collection, and grows with every user added.
Passes that must read a project's documents (listings, reports, start-up upgrades) say so
with `allow_scan`; anything else is counted (`memobase_unkeyed_queries_total`) and logged
with the filter's field names (never its values, which may be user data)."""

from __future__ import annotations

import contextlib
import contextvars
import logging
from collections.abc import Iterator, Mapping
from typing import Any

from pymongo import monitoring

from memobase_server.observability.hooks import QueryObserver

log = logging.getLogger(__name__)

KEYS = ("_id", "user_id", "due")

_scan_reason: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "memobase_scan_reason", default=None
)


@contextlib.contextmanager
def allow_scan(reason: str) -> Iterator[None]:
    """Queries sent inside the block may read more than one user's documents."""
    token = _scan_reason.set(reason)
    try:
        yield
    finally:
        _scan_reason.reset(token)


def _equality(value: Any) -> bool:
    if isinstance(value, Mapping):
        return set(value) == {"$eq"} and not isinstance(value["$eq"], Mapping | list)
    return not isinstance(value, list)


def is_keyed(selector: Mapping[str, Any] | None) -> bool:
    """Whether the filter selects by `_id`, `user_id` or `due` with a plain equality."""
    if not selector:
        return False
    return any(key in selector and _equality(selector[key]) for key in KEYS)


def _filters(command_name: str, command: Mapping[str, Any]) -> list[Mapping[str, Any] | None]:
    if command_name == "find":
        return [command.get("filter")]
    if command_name in ("count", "distinct", "findAndModify"):
        return [command.get("query")]
    if command_name == "update":
        return [u.get("q") for u in command.get("updates", [])]
    if command_name == "delete":
        return [d.get("q") for d in command.get("deletes", [])]
    if command_name == "aggregate":
        stages = command.get("pipeline", [])
        return [stages[0].get("$match") if stages else None]
    return []


class QueryAudit(monitoring.CommandListener):
    def __init__(self, observer: QueryObserver) -> None:
        self._observer = observer
        self._reported: set[tuple[str, str, tuple[str, ...]]] = set()

    def started(self, event: monitoring.CommandStartedEvent) -> None:
        if _scan_reason.get() is not None:
            return
        name = event.command_name
        for selector in _filters(name, event.command):
            if is_keyed(selector):
                continue
            collection = str(event.command.get(name, "?"))
            self._observer.unkeyed_query(collection, name)
            fields = tuple(sorted(selector or ()))
            if (collection, name, fields) not in self._reported:
                self._reported.add((collection, name, fields))
                log.warning(
                    "unkeyed query: %s on %s selects by %s (no _id, user_id or due equality)",
                    name,
                    collection,
                    list(fields) or "nothing",
                )

    def succeeded(self, event: monitoring.CommandSucceededEvent) -> None:
        pass

    def failed(self, event: monitoring.CommandFailedEvent) -> None:
        pass
