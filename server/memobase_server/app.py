"""The composition root: the one place that builds clients, adapters, services and servers."""

from __future__ import annotations

import asyncio
import logging

import grpc
import redis.asyncio as aioredis

from memobase_server.config.loader import ConfigError
from memobase_server.config.settings import Settings
from memobase_server.services.auth import Authenticator
from memobase_server.services.blobs import Blobs
from memobase_server.services.health import DependencyHealth
from memobase_server.services.projects import Projects
from memobase_server.services.users import Users
from memobase_server.storage.mongo.blobs import MongoBlobRepo
from memobase_server.storage.mongo.database import MongoDatabase
from memobase_server.storage.mongo.projects import MongoProjectRepo
from memobase_server.storage.mongo.purge import MongoUserDataPurger
from memobase_server.storage.mongo.users import MongoUserRepo
from memobase_server.storage.redis.client import connect_redis
from memobase_server.storage.redis.project_keys import RedisProjectKeyCache
from memobase_server.transport.gateway import build_gateway
from memobase_server.transport.grpc.server import GrpcServer, Servicers
from memobase_server.transport.grpc.servicers.blobs import BlobServicer
from memobase_server.transport.grpc.servicers.events import EventServicer
from memobase_server.transport.grpc.servicers.profiles import ProfileServicer
from memobase_server.transport.grpc.servicers.projects import ProjectServicer
from memobase_server.transport.grpc.servicers.users import UserServicer
from memobase_server.transport.http_server import HttpServer

log = logging.getLogger("memobase")

STARTUP_ATTEMPTS = 20


def _root_token(settings: Settings) -> str:
    token = settings.access_token.get_secret_value() if settings.access_token else ""
    if not token:
        raise ConfigError(
            "config field 'access_token' (env ACCESS_TOKEN): a root token is required; "
            "the server never runs open"
        )
    return token


class RestGateway:
    """The REST gateway's HTTP server, dialing the gRPC server at a target: in the server's own
    process by default, or alone (`memobase-server gateway`) in front of remote servers."""

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._channel: grpc.aio.Channel | None = None
        self._http: HttpServer | None = None

    @property
    def port(self) -> int:
        return self._http.port if self._http else 0

    async def start(self, target: str) -> int:
        settings = self._settings
        self._channel = grpc.aio.insecure_channel(
            target,
            options=[
                ("grpc.max_receive_message_length", settings.max_request_bytes),
                ("grpc.max_send_message_length", settings.max_request_bytes),
            ],
        )
        gateway = build_gateway(
            self._channel,
            deadline_s=settings.request_deadline_seconds,
            max_body_bytes=settings.max_request_bytes,
        )
        self._http = HttpServer(gateway)
        port = await self._http.start(settings.host, settings.http_port)
        log.info("REST gateway listening on %s:%d, calling gRPC at %s", settings.host, port, target)
        return port

    async def stop(self) -> None:
        if self._http is not None:
            await self._http.stop()
        if self._channel is not None:
            await self._channel.close(grace=None)


class Application:
    """Owns every long-lived resource; `start` brings them up in order, `stop` in reverse."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        root_token = _root_token(settings)
        self.mongo = MongoDatabase(settings.mongo_url, settings.mongo_database)
        self.redis: aioredis.Redis = connect_redis(
            settings.redis_url, settings.redis_max_connections
        )
        user_repo = MongoUserRepo(self.mongo)
        project_repo = MongoProjectRepo(self.mongo)
        key_cache = RedisProjectKeyCache(self.redis, settings.project_id)
        self.health = DependencyHealth(self.mongo, self.redis)
        self.projects = Projects(project_repo, key_cache)
        self.users = Users(user_repo, MongoUserDataPurger(self.mongo))
        self.blobs = Blobs(MongoBlobRepo(self.mongo), self.users, settings.timezone)
        self.grpc = GrpcServer(
            Servicers(
                users=UserServicer(self.users),
                blobs=BlobServicer(self.blobs),
                profiles=ProfileServicer(),
                events=EventServicer(),
                projects=ProjectServicer(self.projects, self.health),
            ),
            Authenticator(root_token, project_repo, key_cache),
            max_message_bytes=settings.max_request_bytes,
        )
        self.gateway = RestGateway(settings) if settings.gateway == "in_process" else None
        self._stopped = asyncio.Event()

    @property
    def grpc_port(self) -> int:
        return self.grpc.port

    @property
    def http_port(self) -> int:
        return self.gateway.port if self.gateway else 0

    async def _wait_for_storage(self) -> None:
        for attempt in range(1, STARTUP_ATTEMPTS + 1):
            try:
                await self.health.check()
                return
            except Exception as exc:
                if attempt == STARTUP_ATTEMPTS:
                    raise
                log.warning("storage not ready (%s); retrying", exc)
                await asyncio.sleep(min(0.25 * attempt, 2.0))

    async def start(self) -> None:
        settings = self.settings
        await self._wait_for_storage()
        await self.mongo.ensure_indexes()
        await self.projects.ensure_root()
        grpc_port = await self.grpc.start(settings.host, settings.grpc_port)
        log.info("gRPC listening on %s:%d", settings.host, grpc_port)
        if self.gateway is not None:
            await self.gateway.start(settings.gateway_grpc_target or f"127.0.0.1:{grpc_port}")

    async def stop(self) -> None:
        """Graceful: health NOT_SERVING, the gateway drains, in-flight gRPC calls get the grace
        period, then storage closes."""
        if self._stopped.is_set():
            return
        self._stopped.set()
        log.info("shutting down")
        if self.gateway is not None:
            await self.gateway.stop()
        await self.grpc.stop(self.settings.shutdown_grace_seconds)
        await self.mongo.close()
        await self.redis.aclose()
        log.info("stopped")
