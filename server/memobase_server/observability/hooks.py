"""What the instrumented code calls: small protocols, so the gRPC interceptor, the gateway, the
flush service and the workers depend on no metrics library. `Metrics` implements them all;
`NO_OBSERVER` does nothing (the default where no metrics are wanted, e.g. in unit tests)."""

from __future__ import annotations

from typing import Literal, Protocol

FlushOutcome = Literal["committed", "failed", "error", "dropped"]
"""committed: the flush's writes are in; failed: the model or a rule refused it (the entries
are marked failed); error: an unexpected exception; dropped: another worker took the flush
over while it computed (its lease had expired), so its plan was thrown away."""

FlushJobOutcome = Literal["done", "skipped", "failed", "error", "malformed"]
"""How a worker finished one queued job (it is acknowledged in every case)."""


class RpcObserver(Protocol):
    def rpc_done(self, method: str, code: str, seconds: float) -> None:
        """One unary call ended: `method` is the full gRPC path, `code` the status code name."""


class GatewayObserver(Protocol):
    def gateway_request_done(self, route: str, status: int, seconds: float) -> None:
        """One HTTP request answered: `route` is the path template (`/api/v1/users/{user_id}`),
        the extra route's path, or `unmatched`; never the raw path."""


class FlushObserver(Protocol):
    def flush_done(self, outcome: FlushOutcome, seconds: float) -> None:
        """One flush (one batch of a user's buffer, one flush id) ended."""


class FlushJobObserver(Protocol):
    def flush_job_done(self, reason: str, outcome: FlushJobOutcome) -> None:
        """A worker finished one queued job; `reason` is why it was queued (size, idle,
        manual, reconcile)."""


class QueryObserver(Protocol):
    def unkeyed_query(self, collection: str, command: str) -> None:
        """A query selected by none of `_id`, `user_id` or `due` outside an allowed scan."""


class _NoObserver:
    def rpc_done(self, method: str, code: str, seconds: float) -> None:
        pass

    def gateway_request_done(self, route: str, status: int, seconds: float) -> None:
        pass

    def flush_done(self, outcome: FlushOutcome, seconds: float) -> None:
        pass

    def flush_job_done(self, reason: str, outcome: FlushJobOutcome) -> None:
        pass

    def unkeyed_query(self, collection: str, command: str) -> None:
        pass


NO_OBSERVER = _NoObserver()
