"""The memory configuration a flush works with: server settings, reshaped by the project's
profile config, over the built-in topics of the language."""

from __future__ import annotations

import functools
from dataclasses import dataclass
from importlib import resources

import yaml

from memobase_server.config.settings import Settings
from memobase_server.domain.profile_config import (
    ProfileConfig,
    SubTopicSpec,
    TagSpec,
    TopicSpec,
    parse_tags,
    parse_topics,
)


@dataclass(frozen=True, slots=True)
class MemoryConfig:
    language: str
    strict_mode: bool
    validate_mode: bool
    topics: tuple[TopicSpec, ...]
    tags: tuple[TagSpec, ...]
    theme_requirement: str | None

    def topic(self, name: str) -> TopicSpec | None:
        return next((t for t in self.topics if t.name == name), None)

    def sub_topic(self, topic: str, sub_topic: str) -> SubTopicSpec | None:
        spec = self.topic(topic)
        if spec is None:
            return None
        return next((s for s in spec.sub_topics if s.name == sub_topic), None)

    def allows(self, topic: str, sub_topic: str) -> bool:
        return not self.strict_mode or self.sub_topic(topic, sub_topic) is not None


@functools.cache
def default_topics(language: str) -> tuple[TopicSpec, ...]:
    text = (resources.files(__package__) / "prompts" / "default_topics.yaml").read_text("utf-8")
    return parse_topics(yaml.safe_load(text)[language], f"default topics ({language})")


def _extend(base: tuple[TopicSpec, ...], extra: tuple[TopicSpec, ...]) -> tuple[TopicSpec, ...]:
    """Adds topics; a topic that exists already gains the sub-topics it lacked."""
    merged = {t.name: t for t in base}
    for topic in extra:
        current = merged.get(topic.name)
        if current is None:
            merged[topic.name] = topic
            continue
        known = {s.name for s in current.sub_topics}
        subs = current.sub_topics + tuple(s for s in topic.sub_topics if s.name not in known)
        merged[topic.name] = TopicSpec(current.name, topic.description or current.description, subs)
    return tuple(merged.values())


def _reshape(
    base: tuple[TopicSpec, ...],
    overwrite: tuple[TopicSpec, ...] | None,
    additional: tuple[TopicSpec, ...] | None,
) -> tuple[TopicSpec, ...]:
    if overwrite is not None:
        return overwrite
    return _extend(base, additional or ())


def memory_config(settings: Settings, project: ProfileConfig) -> MemoryConfig:
    language = project.language or settings.language
    server_overwrite = (
        parse_topics(settings.overwrite_user_profiles, "overwrite_user_profiles")
        if settings.overwrite_user_profiles is not None
        else None
    )
    server_additional = parse_topics(settings.additional_user_profiles, "additional_user_profiles")
    topics = _reshape(default_topics(language), server_overwrite, server_additional)
    topics = _reshape(topics, project.overwrite_user_profiles, project.additional_user_profiles)
    tags = (
        project.event_tags
        if project.event_tags is not None
        else parse_tags(settings.event_tags, "event_tags")
    )
    return MemoryConfig(
        language=language,
        strict_mode=settings.profile_strict_mode
        if project.profile_strict_mode is None
        else project.profile_strict_mode,
        validate_mode=settings.profile_validate_mode
        if project.profile_validate_mode is None
        else project.profile_validate_mode,
        topics=topics,
        tags=tags,
        theme_requirement=project.event_theme_requirement or settings.event_theme_requirement,
    )
