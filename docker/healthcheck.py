"""Container health check: exit 0 when the server answers and its dependencies are up.

Runs inside the image (no curl there). Ports and the gateway mode come from the server's own
config loader, so MEMOBASE_HTTP_PORT / MEMOBASE_GRPC_PORT / MEMOBASE_GATEWAY and a mounted
config.yaml are honoured. With the REST gateway on (the default) it GETs /api/v1/healthcheck
with the standard library and wants errno 0 (the route pings MongoDB and Redis); with
MEMOBASE_GATEWAY=off it asks the standard grpc.health.v1 service instead.
"""

from __future__ import annotations

import json
import sys
import urllib.request

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from memobase_server.config.loader import load_settings

TIMEOUT_S = 8.0  # the route gives MongoDB and Redis 3 s each


def _target_host(host: str) -> str:
    return "127.0.0.1" if host in ("", "0.0.0.0", "::", "[::]") else host


def _check_rest(host: str, port: int) -> str | None:
    url = f"http://{host}:{port}/api/v1/healthcheck"
    with urllib.request.urlopen(url, timeout=TIMEOUT_S) as response:
        body = json.load(response)
    if body.get("errno") != 0:
        return f"errno {body.get('errno')}: {body.get('errmsg')}"
    return None


def _check_grpc(host: str, port: int) -> str | None:
    with grpc.insecure_channel(f"{host}:{port}") as channel:
        reply = health_pb2_grpc.HealthStub(channel).Check(
            health_pb2.HealthCheckRequest(service=""), timeout=TIMEOUT_S
        )
    if reply.status != health_pb2.HealthCheckResponse.SERVING:
        return f"gRPC health {health_pb2.HealthCheckResponse.ServingStatus.Name(reply.status)}"
    return None


def main() -> int:
    try:
        settings = load_settings()
        host = _target_host(settings.host)
        if settings.gateway == "off":
            problem = _check_grpc(host, settings.grpc_port)
        else:
            problem = _check_rest(host, settings.http_port)
    except Exception as exc:  # any failure to get an answer is "unhealthy"
        problem = f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
    if problem:
        print(f"unhealthy: {problem}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
