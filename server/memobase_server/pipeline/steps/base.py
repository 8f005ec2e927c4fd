"""What every step shares: the model, the models to use, and usage accounting."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TypeVar

from pydantic import BaseModel

from memobase_server.domain.flush_plan import StepUsage
from memobase_server.llm.ports import ChatModel
from memobase_server.pipeline.prompts import system_prompt

T = TypeVar("T", bound=BaseModel)


@dataclass
class StepRunner:
    """Runs steps for one flush and adds up their token usage."""

    llm: ChatModel
    best_model: str
    summary_model: str
    language: str
    usage: list[StepUsage] = field(default_factory=list)

    async def run(self, step: str, user: str, schema: type[T], *, summary: bool = False) -> T:
        reply = await self.llm.complete(
            step=step,
            model=self.summary_model if summary else self.best_model,
            system=system_prompt(step, self.language),
            user=user,
            schema=schema,
        )
        self.usage.append(StepUsage(step, reply.usage.prompt_tokens, reply.usage.completion_tokens))
        return reply.value
