"""Settings: config.yaml + environment, failing fast with the field's name."""

from __future__ import annotations

import pathlib

import pytest

from memobase_server.config.loader import ConfigError, load_settings
from memobase_server.config.settings import Settings

REPO = pathlib.Path(__file__).resolve().parent.parent


def test_shipped_config_yaml_holds_the_defaults() -> None:
    assert load_settings(REPO / "config.yaml", env={}) == Settings()


def test_upstream_defaults() -> None:
    s = Settings()
    assert (s.best_llm_model, s.max_chat_blob_buffer_token_size, s.buffer_flush_interval) == (
        "gpt-4o-mini",
        1024,
        3600,
    )
    assert (s.grpc_port, s.http_port, s.language, s.llm_tab_separator) == (50051, 8019, "en", "::")
    assert s.summary_model == "gpt-4o-mini"


def test_environment_beats_the_file(tmp_path: pathlib.Path) -> None:
    path = tmp_path / "config.yaml"
    path.write_text("max_profile_subtopics: 10\nlanguage: zh\n")
    s = load_settings(
        path,
        env={
            "MEMOBASE_MAX_PROFILE_SUBTOPICS": "20",
            "MEMOBASE_PROFILE_STRICT_MODE": "true",
            "MEMOBASE_EVENT_TAGS": '["emotion", {"name": "topic"}]',
            "MEMOBASE_LLM_API_KEY": "12345",
            "ACCESS_TOKEN": "root",
            "REDIS_URL": "redis://elsewhere:1/2",
            "MEMOBASE_GRPC_PORT": "6000",
            "UNRELATED": "x",
        },
    )
    assert s.max_profile_subtopics == 20 and s.language == "zh" and s.profile_strict_mode
    assert s.event_tags == ["emotion", {"name": "topic"}]
    assert s.llm_api_key is not None and s.llm_api_key.get_secret_value() == "12345"
    assert s.access_token is not None and s.access_token.get_secret_value() == "root"
    assert (s.redis_url, s.grpc_port) == ("redis://elsewhere:1/2", 6000)


@pytest.mark.parametrize(
    ("env", "names"),
    [
        ({"MEMOBASE_GRPC_PORT": "70000"}, ["grpc_port", "MEMOBASE_GRPC_PORT"]),
        ({"MEMOBASE_LANGUAGE": "fr"}, ["language"]),
        ({"MEMOBASE_PERSISTENT_CHAT_BLOBS": "maybe"}, ["persistent_chat_blobs"]),
        ({"MEMOBASE_USE_TIMEZONE": "Mars/Olympus"}, ["use_timezone"]),
        ({"LOG_FORMAT": "xml"}, ["log_format", "LOG_FORMAT"]),
    ],
)
def test_bad_values_name_the_field(env: dict[str, str], names: list[str]) -> None:
    with pytest.raises(ConfigError) as err:
        load_settings(env=env)
    for name in names:
        assert name in str(err.value)


def test_bad_yaml_is_a_config_error(tmp_path: pathlib.Path) -> None:
    path = tmp_path / "config.yaml"
    path.write_text("a: [unclosed\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_settings(path, env={})
    path.write_text("- a list\n")
    with pytest.raises(ConfigError, match="mapping"):
        load_settings(path, env={})
