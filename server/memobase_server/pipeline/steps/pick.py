"""Step "pick_profiles": the LLM picks the profile slots relevant to a chat (reads only, and
only when the caller asks for it by sending chats)."""

from __future__ import annotations

from collections.abc import Sequence

from memobase_server.domain.models import JsonObject
from memobase_server.domain.profiles import ProfileSlot
from memobase_server.domain.tokens import truncate_tokens
from memobase_server.pipeline.render import render_message
from memobase_server.pipeline.schemas import PickResult
from memobase_server.pipeline.steps.base import StepRunner

MAX_PICKED = 10
RECENT_MESSAGES = 5
CONTENT_TOKENS = 10


def build_request(slots: Sequence[ProfileSlot], chats: Sequence[JsonObject]) -> str:
    lines = [
        f"{n}. {s.topic}::{s.sub_topic}: {truncate_tokens(s.content, CONTENT_TOKENS)}"
        for n, s in enumerate(slots, start=1)
    ]
    lines.append("Chat:")
    lines.extend(render_message(m, "now") for m in chats[-RECENT_MESSAGES:])
    return "\n".join(lines)


async def pick(
    runner: StepRunner, slots: Sequence[ProfileSlot], chats: Sequence[JsonObject]
) -> list[ProfileSlot]:
    ordered = sorted(slots, key=lambda s: (s.topic, s.sub_topic))
    result = await runner.run(
        "pick_profiles", build_request(ordered, chats), PickResult, summary=True
    )
    picked: list[ProfileSlot] = []
    for number in result.ids:
        if 1 <= number <= len(ordered) and ordered[number - 1] not in picked:
            picked.append(ordered[number - 1])
    return picked[:MAX_PICKED]
