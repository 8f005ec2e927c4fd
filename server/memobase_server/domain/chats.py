"""The `chats_str` parameter: a JSON list of chat messages, validated."""

from __future__ import annotations

import json

from memobase_server.domain.blobs import parse_message
from memobase_server.domain.errors import InvalidArgument
from memobase_server.domain.models import JsonObject

MAX_CHAT_MESSAGES = 200


def parse_chats(text: str | None) -> list[JsonObject]:
    if not text:
        return []
    try:
        raw = json.loads(text)
    except RecursionError:
        raise InvalidArgument("Invalid JSON requests: chats_str is nested too deeply") from None
    except ValueError:
        raise InvalidArgument("Invalid JSON requests: chats_str is not valid JSON") from None
    if not isinstance(raw, list):
        raise InvalidArgument("Invalid JSON requests: chats_str must be a list of messages")
    if len(raw) > MAX_CHAT_MESSAGES:
        raise InvalidArgument(f"chats_str holds more than {MAX_CHAT_MESSAGES} messages")
    try:
        return [parse_message(m, f"chats_str[{i}]") for i, m in enumerate(raw)]
    except InvalidArgument as exc:
        raise InvalidArgument(
            "Invalid JSON requests: " + exc.message.removeprefix("Unable to parse blob: ")
        ) from None
