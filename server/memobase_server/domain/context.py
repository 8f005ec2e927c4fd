"""The context prompt: token budgets and rendering, pure.

Budgets (of profile and event text, never of the template): the profile section gets
`max_token_size * profile_event_ratio`; events get what the profile section left
(`fill_window_with_events`) or at most the rest of the budget.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from memobase_server.domain.errors import InvalidArgument
from memobase_server.domain.profiles import ProfileSlot
from memobase_server.domain.tokens import count_tokens

PROFILE_PLACEHOLDER = "{profile_section}"
EVENT_PLACEHOLDER = "{event_section}"
MAX_TEMPLATE_CHARS = 20_000
_PLACEHOLDERS = re.compile(r"\{profile_section\}|\{event_section\}")


def check_ratio(ratio: float) -> float:
    if not 0.0 <= ratio <= 1.0:
        raise InvalidArgument("profile_event_ratio must be between 0 and 1")
    return ratio


def profile_budget(max_tokens: int, ratio: float) -> int:
    return int(max_tokens * ratio)


def event_budget(max_tokens: int, budget: int, profile_tokens: int, fill_window: bool) -> int:
    left = max_tokens - profile_tokens
    return left if fill_window else min(left, max_tokens - budget)


def render_profile(slots: Sequence[ProfileSlot]) -> str:
    return "\n".join(f"- {s.topic}::{s.sub_topic}: {s.content}" for s in slots)


def pack_lines(lines: Sequence[str], budget: int) -> str:
    """The lines, in order, while their running token count fits the budget."""
    kept: list[str] = []
    used = 0
    for line in lines:
        used += count_tokens(line)
        if used > budget:
            break
        kept.append(line)
    return "\n".join(kept)


def fill_template(template: str, profile_section: str, event_section: str) -> str:
    """Substitutes only the two placeholders: other braces in a custom template are text."""
    if len(template) > MAX_TEMPLATE_CHARS:
        raise InvalidArgument(
            f"customize_context_prompt is longer than {MAX_TEMPLATE_CHARS} characters"
        )
    sections = {PROFILE_PLACEHOLDER: profile_section, EVENT_PLACEHOLDER: event_section}
    return _PLACEHOLDERS.sub(lambda match: sections[match.group(0)], template)
