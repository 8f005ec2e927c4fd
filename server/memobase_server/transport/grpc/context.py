"""Per-call state set by the interceptors and read by servicers and logs."""

from __future__ import annotations

from contextvars import ContextVar

from memobase_server.domain.models import Principal

current_principal: ContextVar[Principal | None] = ContextVar("current_principal", default=None)
current_request_id: ContextVar[str] = ContextVar("current_request_id", default="-")


def principal() -> Principal:
    found = current_principal.get()
    if found is None:  # a servicer reached without the auth interceptor: a wiring bug
        raise RuntimeError("no authenticated principal for this call")
    return found


def project_id() -> str:
    return principal().project_id
