"""System prompts of the pipeline steps: data files per language (`prompts/<lang>/<step>.md`)."""

from __future__ import annotations

import functools
from importlib import resources


@functools.cache
def system_prompt(step: str, language: str) -> str:
    folder = resources.files(__package__) / "prompts" / language
    return (folder / f"{step}.md").read_text("utf-8").strip()
