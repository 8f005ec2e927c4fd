"""Builds Settings from config.yaml and the environment, failing fast with the field's name.

Precedence: environment > config file > defaults. `MEMOBASE_<FIELD>` sets any field; its value
is read as JSON when that fits the field (`20`, `true`, `["a"]`), else as a plain string.
Upstream's own names are honoured too: ACCESS_TOKEN, REDIS_URL, PROJECT_ID, LOG_FORMAT,
USAGE_TOKEN_LIMIT_ACTIVE.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml
from pydantic import TypeAdapter, ValidationError

from memobase_server.config.settings import Settings

ENV_PREFIX = "MEMOBASE_"
UPSTREAM_ENV_NAMES = {
    "ACCESS_TOKEN": "access_token",
    "REDIS_URL": "redis_url",
    "PROJECT_ID": "project_id",
    "LOG_FORMAT": "log_format",
    "USAGE_TOKEN_LIMIT_ACTIVE": "usage_token_limit_active",
}
CONFIG_PATH_ENV = "MEMOBASE_CONFIG"


class ConfigError(Exception):
    """The configuration cannot be used; the message names the field and the source."""


def _read_file(path: Path) -> dict[str, Any]:
    try:
        loaded = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML ({exc})") from None
    except OSError as exc:
        raise ConfigError(f"{path}: cannot be read ({exc.strerror})") from None
    if loaded is None:
        return {}
    if not isinstance(loaded, dict):
        raise ConfigError(f"{path}: the top level must be a mapping of field: value")
    return loaded


def _from_env(env: Mapping[str, str]) -> tuple[dict[str, Any], dict[str, str]]:
    values: dict[str, Any] = {}
    sources: dict[str, str] = {}
    fields = Settings.model_fields
    for name, field in UPSTREAM_ENV_NAMES.items():
        if env.get(name):
            values[field] = env[name]
            sources[field] = name
    for key, raw in env.items():
        if not key.startswith(ENV_PREFIX):
            continue
        field = key[len(ENV_PREFIX) :].lower()
        if field not in fields:
            continue
        values[field] = _env_value(field, raw)
        sources[field] = key
    return values, sources


def _env_value(field: str, raw: str) -> Any:
    """JSON when it type-checks for the field, else the raw text (validated as such later)."""
    try:
        parsed = json.loads(raw)
    except ValueError:
        return raw
    try:
        annotation: Any = Settings.model_fields[field].annotation
        TypeAdapter[Any](annotation).validate_python(parsed)
    except ValidationError:
        return raw
    return parsed


def _describe(exc: ValidationError, sources: Mapping[str, str], origin: str) -> str:
    problems = []
    for error in exc.errors():
        field = ".".join(str(part) for part in error["loc"]) or "(root)"
        top = str(error["loc"][0]) if error["loc"] else ""
        source = sources.get(top, origin)
        problems.append(f"config field '{field}' (from {source}): {error['msg']}")
    return "; ".join(problems)


def load_settings(
    path: str | Path | None = None,
    env: Mapping[str, str] | None = None,
    overrides: Mapping[str, Any] | None = None,
) -> Settings:
    env = os.environ if env is None else env
    file_values: dict[str, Any] = {}
    origin = "defaults"
    chosen = path or env.get(CONFIG_PATH_ENV)
    if chosen is not None:
        file_values = _read_file(Path(chosen))
        origin = str(chosen)
    elif Path("config.yaml").is_file():
        file_values = _read_file(Path("config.yaml"))
        origin = "config.yaml"
    env_values, sources = _from_env(env)
    merged = {**file_values, **env_values, **(overrides or {})}
    for key in overrides or {}:
        sources[key] = "overrides"
    try:
        return Settings.model_validate(merged)
    except ValidationError as exc:
        raise ConfigError(_describe(exc, sources, origin)) from None
