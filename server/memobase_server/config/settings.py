"""The typed settings object: every field of upstream's config.yaml, plus our own."""

from __future__ import annotations

from typing import Any, Literal
from zoneinfo import ZoneInfo

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator

DEFAULT_EVENT_THEME_REQUIREMENT = (
    "Keep what the user tells about themselves: facts, plans and happenings. "
    "Leave out instructions the user gives the assistant."
)

TIMEZONES = ("UTC", "America/New_York", "Europe/London", "Asia/Tokyo", "Asia/Shanghai")


class Settings(BaseModel):
    """Read once at start-up (`config.loader.load_settings`); never mutated afterwards."""

    model_config = ConfigDict(extra="ignore", frozen=True, validate_default=True)

    # --- upstream config.yaml fields (same names and defaults) ---
    llm_api_key: SecretStr | None = None
    llm_base_url: str | None = None
    llm_style: Literal["openai", "doubao_cache"] = "openai"
    llm_openai_default_query: dict[str, Any] | None = None
    llm_openai_default_header: dict[str, str] | None = None
    best_llm_model: str = "gpt-4o-mini"
    summary_llm_model: str | None = None
    thinking_llm_model: str = "o4-mini"
    system_prompt: str | None = None
    language: Literal["en", "zh"] = "en"
    max_chat_blob_buffer_token_size: int = Field(default=1024, ge=1)
    max_chat_blob_buffer_process_token_size: int = Field(default=16384, ge=1)
    buffer_flush_interval: int = Field(default=3600, ge=1)
    max_profile_subtopics: int = Field(default=15, ge=1)
    max_pre_profile_token_size: int = Field(default=128, ge=1)
    llm_tab_separator: str = Field(default="::", min_length=1)
    cache_user_profiles_ttl: int = Field(default=1200, ge=0)
    persistent_chat_blobs: bool = False
    use_timezone: (
        Literal["UTC", "America/New_York", "Europe/London", "Asia/Tokyo", "Asia/Shanghai"] | None
    ) = None
    enable_event_embedding: bool = True
    embedding_provider: Literal["openai", "jina", "ollama", "lmstudio", "local"] = "openai"
    embedding_api_key: SecretStr | None = None
    embedding_base_url: str | None = None
    embedding_model: str = "text-embedding-3-small"
    embedding_dim: int = Field(default=1536, ge=1)
    embedding_max_token_size: int = Field(default=8192, ge=1)
    minimum_chats_token_size_for_event_summary: int = Field(default=256, ge=0)
    additional_user_profiles: list[dict[str, Any]] = Field(default_factory=list)
    overwrite_user_profiles: list[dict[str, Any]] | None = None
    profile_strict_mode: bool = False
    profile_validate_mode: bool = True
    event_theme_requirement: str | None = DEFAULT_EVENT_THEME_REQUIREMENT
    event_tags: list[str | dict[str, Any]] = Field(default_factory=list)
    telemetry_deployment_environment: str = "local"

    # --- this service's own fields ---
    llm_output_mode: Literal["json_schema", "json_object", "text"] = "json_schema"
    llm_timeout_seconds: float = Field(default=120.0, gt=0)
    llm_max_retries: int = Field(default=3, ge=0, le=10)
    # Flushes in flight per process (they mostly wait on the model); 0: none (use workers).
    flush_workers: int = Field(default=16, ge=0, le=256)
    # A user's flush lease, renewed every third of it while the flush runs: a dead worker's
    # lease (and its queued job) is taken over this long after it died.
    flush_lease_seconds: float = Field(default=15.0, ge=1)
    flush_max_attempts: int = Field(default=3, ge=1)
    # A flush the buffer's size triggered waits for the user's inserts to pause this long
    # (at most 6 times as long), so a burst of chats makes one batch; 0: at once.
    flush_insert_pause_seconds: float = Field(default=0.5, ge=0, le=60)
    reconcile_interval_seconds: float = Field(default=10.0, ge=1)
    qdrant_url: str | None = None  # a Qdrant server; default: the embedded engine on disk
    vector_store_path: str = ".data/vectors"
    access_token: SecretStr | None = None  # env ACCESS_TOKEN: the root project's token
    mongo_url: str = "mongodb://127.0.0.1:27017/"
    mongo_database: str = Field(default="memobase", min_length=1)
    redis_url: str = "redis://127.0.0.1:6379/0"  # env REDIS_URL
    redis_max_connections: int = Field(default=64, ge=1)
    project_id: str = Field(default="default", min_length=1)  # env PROJECT_ID: Redis namespace
    host: str = "127.0.0.1"
    grpc_port: int = Field(default=50051, ge=0, le=65535)
    http_port: int = Field(default=8019, ge=0, le=65535)
    gateway: Literal["in_process", "off"] = "in_process"
    gateway_grpc_target: str | None = None  # a separate gateway process dials this
    request_deadline_seconds: float = Field(default=60.0, gt=0)
    max_request_bytes: int = Field(default=8 * 2**20, ge=1024)
    shutdown_grace_seconds: float = Field(default=10.0, ge=0)
    log_format: Literal["plain", "json"] = "plain"  # env LOG_FORMAT
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    # env USAGE_TOKEN_LIMIT_ACTIVE: monthly LLM tokens per project; None or -1: unlimited
    usage_token_limit_active: int | None = Field(default=None, ge=-1)

    @field_validator("summary_llm_model")
    @classmethod
    def _blank_is_none(cls, value: str | None) -> str | None:
        return value or None

    @property
    def timezone(self) -> ZoneInfo | None:
        return ZoneInfo(self.use_timezone) if self.use_timezone else None

    @property
    def summary_model(self) -> str:
        return self.summary_llm_model or self.best_llm_model
