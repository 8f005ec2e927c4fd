"""A project's profile configuration (YAML), validated field by field.

Keys (all optional; absent means "use the server's value"): language, profile_strict_mode,
profile_validate_mode, overwrite_user_profiles, additional_user_profiles,
event_theme_requirement, event_tags. Unknown keys are ignored, as upstream does.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import yaml

from memobase_server.domain.errors import InvalidArgument
from memobase_server.domain.profiles import normalize_name

MAX_CONFIG_CHARS = 65535
LANGUAGES = ("en", "zh")


@dataclass(frozen=True, slots=True)
class SubTopicSpec:
    name: str
    description: str | None = None
    update_description: str | None = None
    validate_value: bool = False


@dataclass(frozen=True, slots=True)
class TopicSpec:
    name: str
    description: str | None = None
    sub_topics: tuple[SubTopicSpec, ...] = ()


@dataclass(frozen=True, slots=True)
class TagSpec:
    name: str
    description: str | None = None


@dataclass(frozen=True, slots=True)
class ProfileConfig:
    language: str | None = None
    profile_strict_mode: bool | None = None
    profile_validate_mode: bool | None = None
    overwrite_user_profiles: tuple[TopicSpec, ...] | None = None
    additional_user_profiles: tuple[TopicSpec, ...] | None = None
    event_theme_requirement: str | None = None
    event_tags: tuple[TagSpec, ...] | None = None


def _text(value: Any, where: str, *, required: bool = False) -> str | None:
    if value is None and not required:
        return None
    if not isinstance(value, str) or (required and not value.strip()):
        raise InvalidArgument(f"profile config: {where} must be a non-empty string")
    return value


def _bool(value: Any, where: str) -> bool | None:
    if value is None:
        return None
    if not isinstance(value, bool):
        raise InvalidArgument(f"profile config: {where} must be true or false")
    return value


def _sub_topic(raw: Any, where: str) -> SubTopicSpec:
    if isinstance(raw, str):
        return SubTopicSpec(normalize_name(_text(raw, where, required=True) or ""))
    if not isinstance(raw, dict):
        raise InvalidArgument(f"profile config: {where} must be a name or a mapping with 'name'")
    name = _text(raw.get("name"), f"{where}.name", required=True) or ""
    return SubTopicSpec(
        name=normalize_name(name),
        description=_text(raw.get("description"), f"{where}.description"),
        update_description=_text(raw.get("update_description"), f"{where}.update_description"),
        validate_value=bool(_bool(raw.get("validate_value"), f"{where}.validate_value")),
    )


def parse_topics(raw: Any, where: str) -> tuple[TopicSpec, ...]:
    if not isinstance(raw, list):
        raise InvalidArgument(f"profile config: {where} must be a list of topics")
    topics = []
    for i, item in enumerate(raw):
        at = f"{where}[{i}]"
        if not isinstance(item, dict):
            raise InvalidArgument(f"profile config: {at} must be a mapping with 'topic'")
        name = _text(item.get("topic"), f"{at}.topic", required=True) or ""
        subs = item.get("sub_topics", [])
        if not isinstance(subs, list):
            raise InvalidArgument(f"profile config: {at}.sub_topics must be a list")
        topics.append(
            TopicSpec(
                name=normalize_name(name),
                description=_text(item.get("description"), f"{at}.description"),
                sub_topics=tuple(
                    _sub_topic(s, f"{at}.sub_topics[{j}]") for j, s in enumerate(subs)
                ),
            )
        )
    return tuple(topics)


def parse_tags(raw: Any, where: str) -> tuple[TagSpec, ...]:
    if not isinstance(raw, list):
        raise InvalidArgument(f"profile config: {where} must be a list of tags")
    tags = []
    for i, item in enumerate(raw):
        at = f"{where}[{i}]"
        if isinstance(item, str):
            tags.append(TagSpec(normalize_name(_text(item, at, required=True) or "")))
        elif isinstance(item, dict):
            name = _text(item.get("name"), f"{at}.name", required=True) or ""
            tags.append(
                TagSpec(normalize_name(name), _text(item.get("description"), f"{at}.description"))
            )
        else:
            raise InvalidArgument(f"profile config: {at} must be a name or a mapping with 'name'")
    return tuple(tags)


def parse_profile_config(text: str | None) -> ProfileConfig:
    """Parses and validates; raises InvalidArgument naming the first bad field."""
    if text is None or not text.strip():
        return ProfileConfig()
    if len(text) > MAX_CONFIG_CHARS:
        raise InvalidArgument(f"profile config is longer than {MAX_CONFIG_CHARS} characters")
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark is not None else ""
        raise InvalidArgument(f"profile config is not valid YAML{where}") from None
    if raw is None:
        return ProfileConfig()
    if not isinstance(raw, dict):
        raise InvalidArgument("profile config must be a YAML mapping of field: value")
    language = raw.get("language")
    if language is not None and language not in LANGUAGES:
        raise InvalidArgument("profile config: language must be 'en' or 'zh'")
    overwrite = raw.get("overwrite_user_profiles")
    additional = raw.get("additional_user_profiles")
    tags = raw.get("event_tags")
    return ProfileConfig(
        language=language,
        profile_strict_mode=_bool(raw.get("profile_strict_mode"), "profile_strict_mode"),
        profile_validate_mode=_bool(raw.get("profile_validate_mode"), "profile_validate_mode"),
        overwrite_user_profiles=None
        if overwrite is None
        else parse_topics(overwrite, "overwrite_user_profiles"),
        additional_user_profiles=None
        if additional is None
        else parse_topics(additional, "additional_user_profiles"),
        event_theme_requirement=_text(
            raw.get("event_theme_requirement"), "event_theme_requirement"
        ),
        event_tags=None if tags is None else parse_tags(tags, "event_tags"),
    )
