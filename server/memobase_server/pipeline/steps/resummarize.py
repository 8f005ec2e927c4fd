"""Step "resummarize": a slot grown past `max_pre_profile_token_size` tokens is condensed."""

from __future__ import annotations

from memobase_server.domain.tokens import count_tokens, truncate_tokens
from memobase_server.pipeline.schemas import ResummarizeResult
from memobase_server.pipeline.steps.base import StepRunner


def word_limit(max_tokens: int) -> int:
    return max(8, max_tokens // 2 * 3 // 4)


async def resummarize(runner: StepRunner, content: str, max_tokens: int) -> str:
    """Condensed content, never longer than half the limit (cut with "..." if the model
    overshoots)."""
    request = f"Limit: {word_limit(max_tokens)} words\nContent:\n{content}"
    result = await runner.run("resummarize", request, ResummarizeResult, summary=True)
    condensed = result.content.strip() or content
    budget = max_tokens // 2
    if count_tokens(condensed) > budget:
        condensed = truncate_tokens(condensed, budget) + "..."
    return condensed
