"""The composition root: the one place that builds clients, adapters, services and servers."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

import grpc
import redis.asyncio as aioredis
from pydantic import SecretStr

from memobase_server.config.loader import ConfigError
from memobase_server.config.settings import Settings
from memobase_server.llm.chat import OpenAIChatModel, build_openai_client
from memobase_server.llm.embedders.local_minilm import LocalMiniLMEmbedder
from memobase_server.llm.embedders.openai_compat import OpenAIEmbedder
from memobase_server.llm.ports import ChatModel, Embedder
from memobase_server.observability.llm import InstrumentedChatModel
from memobase_server.observability.metrics import METRICS_PATH, Metrics, flush_queue_probe
from memobase_server.pipeline.compute import MemoryPipeline
from memobase_server.services.auth import Authenticator
from memobase_server.services.blobs import Blobs
from memobase_server.services.context import ContextBuilder
from memobase_server.services.events import Events
from memobase_server.services.flushes import FlushService
from memobase_server.services.gist_indexer import GistIndexer, IndexEraser
from memobase_server.services.health import DependencyHealth
from memobase_server.services.profile_import import ProfileImporter
from memobase_server.services.profile_store import ProfileStore
from memobase_server.services.profiles import Profiles
from memobase_server.services.project_configs import ProjectConfigs
from memobase_server.services.project_settings import ProjectSettings, ProjectUsers
from memobase_server.services.projects import Projects
from memobase_server.services.roleplay import Roleplay
from memobase_server.services.timeline import Timeline
from memobase_server.services.usage import UsageRecorder, UsageReports
from memobase_server.services.users import Users
from memobase_server.storage.mongo.blobs import MongoBlobRepo, MongoBufferRepo
from memobase_server.storage.mongo.database import MongoDatabase
from memobase_server.storage.mongo.events import MongoEventEditRepo, MongoEventRepo
from memobase_server.storage.mongo.flushes import MongoFlushRepo
from memobase_server.storage.mongo.migrations import upgrade as upgrade_layout
from memobase_server.storage.mongo.profiles import MongoProfileRepo
from memobase_server.storage.mongo.projects import MongoProjectRepo
from memobase_server.storage.mongo.purge import MongoUserDataPurger
from memobase_server.storage.mongo.query_audit import QueryAudit
from memobase_server.storage.mongo.usage import MongoUsageRepo
from memobase_server.storage.mongo.user_status import MongoUserStatusRepo
from memobase_server.storage.mongo.users import MongoUserRepo
from memobase_server.storage.ports import GistIndex
from memobase_server.storage.qdrant.client import connect_qdrant_gist_index
from memobase_server.storage.qdrant.edge import EdgeGistIndex
from memobase_server.storage.redis.buffer_state import RedisBufferState
from memobase_server.storage.redis.client import connect_redis
from memobase_server.storage.redis.flush_queue import RedisFlushQueue
from memobase_server.storage.redis.gist_queue import RedisGistQueue
from memobase_server.storage.redis.known_users import RedisKnownUsers
from memobase_server.storage.redis.locks import RedisUserLocks
from memobase_server.storage.redis.project_keys import RedisProjectKeyCache
from memobase_server.storage.redis.read_cache import RedisReadCache
from memobase_server.transport.gateway import Invoker, build_gateway
from memobase_server.transport.gateway.openapi import ApiDocs
from memobase_server.transport.grpc.inprocess import InProcessInvoker
from memobase_server.transport.grpc.server import PUBLIC_METHODS, GrpcServer, Servicers
from memobase_server.transport.grpc.servicers.blobs import BlobServicer
from memobase_server.transport.grpc.servicers.events import EventServicer
from memobase_server.transport.grpc.servicers.profiles import ProfileServicer
from memobase_server.transport.grpc.servicers.projects import ProjectServicer
from memobase_server.transport.grpc.servicers.users import UserServicer
from memobase_server.transport.http_server import HttpServer
from memobase_server.worker.flush_worker import FlushWorker
from memobase_server.worker.scheduler import FlushScheduler

log = logging.getLogger("memobase")

STARTUP_ATTEMPTS = 20


def _secret(value: SecretStr | None) -> str:
    return value.get_secret_value() if value else ""


def build_chat_model(settings: Settings) -> ChatModel | None:
    """None when no LLM is configured: chats are then stored and buffered, never processed."""
    if not _secret(settings.llm_api_key) and not settings.llm_base_url:
        return None
    client = build_openai_client(
        settings.llm_base_url,
        _secret(settings.llm_api_key),
        timeout_s=settings.llm_timeout_seconds,
        max_retries=settings.llm_max_retries,
        default_headers=settings.llm_openai_default_header,
        default_query=settings.llm_openai_default_query,
    )
    return OpenAIChatModel(client, output_mode=settings.llm_output_mode)


def build_embedder(settings: Settings) -> Embedder | None:
    """The configured embeddings provider; with none configured, the embedded MiniLM model."""
    if not settings.enable_event_embedding:
        return None
    provider = settings.embedding_provider
    api_key = _secret(settings.embedding_api_key)
    base_url = settings.embedding_base_url
    if provider == "openai" and not api_key and not base_url:
        api_key, base_url = _secret(settings.llm_api_key), settings.llm_base_url
    if provider == "local" or (provider == "openai" and not api_key and not base_url):
        return LocalMiniLMEmbedder()
    return OpenAIEmbedder(
        model=settings.embedding_model,
        dim=settings.embedding_dim,
        base_url=base_url,
        api_key=api_key,
        send_dimensions=settings.embedding_model.startswith("text-embedding-3"),
        timeout=settings.llm_timeout_seconds,
        max_retries=settings.llm_max_retries,
    )


def build_gist_index(settings: Settings, embedder: Embedder | None) -> GistIndex | None:
    """A Qdrant server when `qdrant_url` is set, else Qdrant's engine in process, on disk."""
    if embedder is None:
        return None
    if settings.qdrant_url:
        return connect_qdrant_gist_index(embedder.model_name, embedder.dim, url=settings.qdrant_url)
    return EdgeGistIndex(Path(settings.vector_store_path), embedder.model_name, embedder.dim)


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
    process by default, or alone (`memobase-server gateway`) in front of remote servers.
    Besides the API it serves `/openapi.json`, `/docs` and `/metrics`."""

    def __init__(self, settings: Settings, metrics: Metrics | None = None) -> None:
        self._settings = settings
        self._metrics = metrics if metrics is not None else Metrics()
        self._channel: grpc.aio.Channel | None = None
        self._http: HttpServer | None = None

    @property
    def port(self) -> int:
        return self._http.port if self._http else 0

    async def start(self, target: str | Invoker) -> int:
        """`target`: the host:port of a gRPC server, or an in-process invoker."""
        settings = self._settings
        route_to: grpc.aio.Channel | Invoker
        if isinstance(target, str):
            self._channel = route_to = grpc.aio.insecure_channel(
                target,
                options=[
                    ("grpc.max_receive_message_length", settings.max_request_bytes),
                    ("grpc.max_send_message_length", settings.max_request_bytes),
                ],
            )
        else:
            route_to = target
        docs = ApiDocs(public_methods=PUBLIC_METHODS)
        gateway = build_gateway(
            route_to,
            deadline_s=settings.request_deadline_seconds,
            max_body_bytes=settings.max_request_bytes,
            extra_routes={**docs.routes(), METRICS_PATH: self._metrics.handle_scrape},
            observer=self._metrics,
        )
        docs.publish(gateway.router)
        self._http = HttpServer(gateway)
        port = await self._http.start(settings.host, settings.http_port)
        log.info(
            "REST gateway listening on %s:%d, calling gRPC %s",
            settings.host,
            port,
            f"at {target}" if isinstance(target, str) else "in process",
        )
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
        self.metrics = Metrics()
        self.mongo = MongoDatabase(
            settings.mongo_url, settings.mongo_database, listeners=[QueryAudit(self.metrics)]
        )
        self.redis: aioredis.Redis = connect_redis(
            settings.redis_url, settings.redis_max_connections
        )
        ns = settings.project_id
        cache_ttl = settings.cache_user_profiles_ttl
        user_repo = MongoUserRepo(self.mongo)
        project_repo = MongoProjectRepo(self.mongo)
        key_cache = RedisProjectKeyCache(self.redis, ns)
        self.health = DependencyHealth(self.mongo, self.redis)
        self.projects = Projects(project_repo, key_cache)
        self.configs = ProjectConfigs(settings, project_repo)
        profile_store = ProfileStore(
            MongoProfileRepo(self.mongo), RedisReadCache(self.redis, ns, "profile", cache_ttl)
        )
        timeline = Timeline(
            MongoEventRepo(self.mongo),
            RedisReadCache(self.redis, ns, "events", cache_ttl),
            RedisReadCache(self.redis, ns, "gists", cache_ttl),
        )
        self.users = Users(
            user_repo,
            RedisKnownUsers(self.redis, ns),
            [MongoUserDataPurger(self.mongo), profile_store, timeline],
        )
        self.blobs = Blobs(MongoBlobRepo(self.mongo), self.users, settings.timezone)
        usage_repo = MongoUsageRepo(self.mongo)
        self.usage = UsageRecorder(usage_repo)
        chat_model = build_chat_model(settings)
        if chat_model is not None:
            chat_model = InstrumentedChatModel(chat_model, self.metrics)
        self.embedder = build_embedder(settings)
        self.gist_index = build_gist_index(settings, self.embedder)
        event_edits = MongoEventEditRepo(self.mongo)
        gist_queue = RedisGistQueue(self.redis, ns)
        self.indexer = (
            GistIndexer(event_edits, self.gist_index, self.embedder, gist_queue)
            if self.gist_index is not None and self.embedder is not None
            else None
        )
        if self.gist_index is not None:
            self.users.add_eraser(IndexEraser(self.gist_index))
        pipeline = (
            MemoryPipeline(
                chat_model,
                self.embedder,
                best_model=settings.best_llm_model,
                summary_model=settings.summary_model,
                max_subtopics=settings.max_profile_subtopics,
                max_slot_tokens=settings.max_pre_profile_token_size,
                timezone=settings.timezone,
            )
            if chat_model is not None
            else None
        )
        self.buffer = buffer_repo = MongoBufferRepo(self.mongo)
        queue = RedisFlushQueue(self.redis, ns)
        self.metrics.watch_flush_queue(flush_queue_probe(self.redis, ns))
        buffer_state = RedisBufferState(self.redis, ns)
        self.flushes = FlushService(
            settings=settings,
            pipeline=pipeline,
            buffer=buffer_repo,
            flushes=MongoFlushRepo(self.mongo),
            profiles=profile_store,
            events=MongoEventRepo(self.mongo),
            usage=usage_repo,
            configs=self.configs,
            timeline=timeline,
            queue=queue,
            locks=RedisUserLocks(self.redis, ns, settings.flush_lease_seconds),
            buffer_state=buffer_state,
            gist_queue=gist_queue,
            index_handoff=self.indexer.offer if self.indexer is not None else None,
            observer=self.metrics,
        )
        self.worker = (
            FlushWorker(
                queue,
                self.flushes,
                concurrency=settings.flush_workers,
                reclaim_after_s=settings.flush_lease_seconds,
                observer=self.metrics,
            )
            if settings.flush_workers > 0
            else None
        )
        self.scheduler = FlushScheduler(
            self.flushes,
            buffer_repo,
            buffer_state,
            idle_after_s=settings.buffer_flush_interval,
            reconcile_every_s=settings.reconcile_interval_seconds,
            max_attempts=settings.flush_max_attempts,
            size_threshold=settings.max_chat_blob_buffer_token_size,
        )
        profiles = Profiles(
            profile_store,
            self.users,
            chat_model,
            summary_model=settings.summary_model,
            language=settings.language,
        )
        events = Events(timeline, event_edits, self.gist_index, self.embedder, gist_queue)
        context_builder = ContextBuilder(
            profile_store,
            profiles,
            timeline,
            events,
            self.configs,
            semantic_events=self.gist_index is not None,
        )
        self._background: list[asyncio.Task[None]] = []
        self._serving = False
        self.grpc = GrpcServer(
            Servicers(
                users=UserServicer(self.users),
                blobs=BlobServicer(self.blobs, self.flushes, self.usage),
                profiles=ProfileServicer(profiles, context_builder),
                events=EventServicer(events),
                projects=ProjectServicer(
                    self.projects,
                    self.health,
                    project_settings=ProjectSettings(
                        project_repo, settings, on_change=self.configs.forget
                    ),
                    project_users=ProjectUsers(user_repo),
                    usage=UsageReports(
                        usage_repo, monthly_token_limit=settings.usage_token_limit_active
                    ),
                    importer=ProfileImporter(self.blobs, self.flushes),
                    roleplay=Roleplay(
                        profile_store,
                        MongoUserStatusRepo(self.mongo),
                        self.configs,
                        chat_model,
                        best_model=settings.best_llm_model,
                        thinking_model=settings.thinking_llm_model,
                    ),
                ),
            ),
            Authenticator(root_token, project_repo, key_cache),
            max_message_bytes=settings.max_request_bytes,
            rpc_observer=self.metrics,
        )
        self.gateway = (
            RestGateway(settings, self.metrics) if settings.gateway == "in_process" else None
        )
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

    async def _prepare_storage(self) -> None:
        await self._wait_for_storage()
        await self.mongo.ensure_indexes()
        await upgrade_layout(self.mongo)

    async def start_admin(self) -> None:
        """For command-line operations: storage only, no servers or background work."""
        await self._prepare_storage()

    async def start_worker(self) -> None:
        """A worker process: flush workers and the scheduler, no servers."""
        if self.worker is None:
            raise ConfigError("config field 'flush_workers': a worker process needs at least 1")
        await self._prepare_storage()
        await self.start_background(worker=True)

    async def start(self) -> None:
        settings = self.settings
        await self._prepare_storage()
        await self.projects.ensure_root()
        self._serving = True
        self.usage.start()
        if self.gist_index is not None:
            await self.gist_index.open()
        if self.indexer is not None:
            self._background.append(asyncio.create_task(self.indexer.run()))
        grpc_port = await self.grpc.start(settings.host, settings.grpc_port)
        log.info("gRPC listening on %s:%d", settings.host, grpc_port)
        if self.gateway is not None:
            await self.gateway.start(
                settings.gateway_grpc_target
                or await InProcessInvoker.build(self.grpc.registrations, self.grpc.interceptors)
            )
        await self.start_background(worker=self.worker is not None)

    async def start_background(self, *, worker: bool) -> None:
        """The scheduler (idle flushes, reconcile) and, when asked, flush workers."""
        if self.worker is not None and worker:
            self._background.append(asyncio.create_task(self.worker.run()))
        self._background.append(asyncio.create_task(self.scheduler.run()))

    async def stop(self) -> None:
        """Graceful: health NOT_SERVING, the gateway drains, in-flight gRPC calls get the grace
        period, then storage closes."""
        if self._stopped.is_set():
            return
        self._stopped.set()
        log.info("shutting down")
        if self.gateway is not None:
            await self.gateway.stop()
        if self._serving:
            await self.grpc.stop(self.settings.shutdown_grace_seconds)
            await self.usage.close()
        if self.worker is not None:
            await self.worker.stop(self.settings.shutdown_grace_seconds)
        for task in self._background:
            task.cancel()
        await asyncio.gather(*self._background, return_exceptions=True)
        if self.gist_index is not None and self._serving:
            await self.gist_index.close()
        if self.embedder is not None:
            await self.embedder.close()
        await self.mongo.close()
        await self.redis.aclose()
        log.info("stopped")
