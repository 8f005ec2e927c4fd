"""Experimental: proactive topics for role-play. One call judges whether the scene has run
its course; only then a second call (the thinking model) plans a new plot from the user's
profile and the plots so far."""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from memobase_server.domain.errors import FailedPrecondition, InvalidArgument
from memobase_server.domain.ids import parse_uuid
from memobase_server.domain.models import JsonObject, utcnow
from memobase_server.domain.profile_selection import ProfileFilter, select, slot_line
from memobase_server.llm.ports import ChatModel
from memobase_server.pipeline.render import render_message
from memobase_server.pipeline.schemas import RoleplayJudgement, RoleplayPlot
from memobase_server.pipeline.steps.base import StepRunner
from memobase_server.services.flushes import LLM_NOT_CONFIGURED
from memobase_server.services.profile_store import ProfileStore
from memobase_server.services.project_configs import ProjectConfigs
from memobase_server.storage.mongo.user_status import MongoUserStatusRepo

PLOT_STATUS = "roleplay_plot_status"
EARLIER_PLOTS = 5
_STEER = {"en": "Steer the role-play toward this plot:", "zh": "请按以下剧情推进角色扮演："}  # noqa: RUF001


@dataclass(frozen=True, slots=True)
class ProactiveAnswer:
    action: str
    topic_prompt: str | None = None


class Roleplay:
    def __init__(
        self,
        store: ProfileStore,
        status: MongoUserStatusRepo,
        configs: ProjectConfigs,
        llm: ChatModel | None,
        *,
        best_model: str,
        thinking_model: str,
    ) -> None:
        self._store = store
        self._status = status
        self._configs = configs
        self._llm = llm
        self._best_model = best_model
        self._thinking_model = thinking_model

    async def proactive(
        self,
        project_id: str,
        user_id: str,
        messages: list[JsonObject],
        agent_context: str | None,
        rules: ProfileFilter,
    ) -> ProactiveAnswer:
        user_id = parse_uuid(user_id, "user_id")
        if not messages:
            raise InvalidArgument("messages must hold at least one message")
        if self._llm is None:
            raise FailedPrecondition(LLM_NOT_CONFIGURED)
        language = await self._configs.language(project_id)
        chat = "\n".join(render_message(m, "now") for m in messages)
        judge = StepRunner(self._llm, self._best_model, self._best_model, language)
        context_line = f"Agent: {agent_context}\n" if agent_context else ""
        verdict = await judge.run(
            "roleplay_judge", f"{context_line}Chat:\n{chat}", RoleplayJudgement
        )
        now = utcnow()
        if verdict.action == "continue":
            await self._status.add(
                project_id, user_id, str(uuid.uuid4()), PLOT_STATUS, {"action": "continue"}, now
            )
            return ProactiveAnswer("continue")
        earlier = await self._status.recent(project_id, user_id, PLOT_STATUS, EARLIER_PLOTS * 3)
        overviews = [e["overview"] for e in earlier if e.get("overview")][:EARLIER_PLOTS]
        slots = select(await self._store.slots(project_id, user_id), rules)
        parts = ["Profile:", *(f"- {slot_line(s)}" for s in slots)]
        if overviews:
            parts += ["Earlier plots:", *(f"- {o}" for o in overviews)]
        if agent_context:
            parts.append(f"Agent: {agent_context}")
        parts += ["Chat:", chat]
        planner = StepRunner(self._llm, self._thinking_model, self._thinking_model, language)
        plot = await planner.run("roleplay_plot", "\n".join(parts), RoleplayPlot)
        await self._status.add(
            project_id,
            user_id,
            str(uuid.uuid4()),
            PLOT_STATUS,
            {"action": "new_topic", **asdict_plot(plot)},
            now,
        )
        steer = _STEER.get(language, _STEER["en"])
        timeline = "\n".join(f"- {beat}" for beat in plot.timeline)
        return ProactiveAnswer("new_topic", f"{steer}\n{timeline}\n##")


def asdict_plot(plot: RoleplayPlot) -> JsonObject:
    return {"themes": plot.themes, "overview": plot.overview, "timeline": plot.timeline}
