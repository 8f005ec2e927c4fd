"""What each pipeline step asks the LLM to return. These models are sent as JSON schemas
(structured outputs) and validate every answer; the schema's name identifies the step."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field


class _Output(BaseModel):
    model_config = ConfigDict(extra="ignore")


class ExtractedFact(_Output):
    text: str = Field(description="One fact, event or plan of the user, as a short sentence")
    kind: Literal["info", "event", "schedule"] = "info"
    when: str | None = Field(default=None, description="Date of the fact, resolved, if known")


class ProfileCandidate(_Output):
    topic: str
    sub_topic: str
    memo: str = Field(description="What the chat says about this slot")


class TagValue(_Output):
    tag: str
    value: str


class ExtractResult(_Output):
    """Step "extract": the facts of a chat, the profile slots they fill, and event tags."""

    facts: list[ExtractedFact] = Field(default_factory=list)
    profiles: list[ProfileCandidate] = Field(default_factory=list)
    tags: list[TagValue] = Field(default_factory=list)


class MergeDecision(_Output):
    id: int = Field(description="The number of the slot in the request")
    action: Literal["update", "append", "abort"]
    content: str = Field(default="", description="The slot's new content for update")


class MergeResult(_Output):
    """Step "merge": how each new memo changes an existing (or validated new) slot."""

    decisions: list[MergeDecision] = Field(default_factory=list)


class OrganizedSlot(_Output):
    sub_topic: str
    content: str


class OrganizeResult(_Output):
    """Step "organize": a topic's slots regrouped into fewer sub-topics."""

    slots: list[OrganizedSlot] = Field(default_factory=list)


class ResummarizeResult(_Output):
    """Step "resummarize": one slot's content condensed."""

    content: str


class PickResult(_Output):
    """Step "pick_profiles": the numbers of the profile slots relevant to a chat."""

    ids: list[int] = Field(default_factory=list)


class RoleplayJudgement(_Output):
    """Step "roleplay_judge": whether a role-play chat has run its course."""

    action: Literal["new_topic", "continue"]
    reason: str = ""


class RoleplayPlot(_Output):
    """Step "roleplay_plot": the next plot for a role-play, from the user's profile."""

    themes: list[str] = Field(default_factory=list)
    overview: str
    timeline: list[str] = Field(default_factory=list)


STEP_SCHEMAS: dict[str, type[BaseModel]] = {
    "extract": ExtractResult,
    "merge": MergeResult,
    "organize": OrganizeResult,
    "resummarize": ResummarizeResult,
    "pick_profiles": PickResult,
    "roleplay_judge": RoleplayJudgement,
    "roleplay_plot": RoleplayPlot,
}
