"""What the scripted model answers for each pipeline step: pure functions from the user message
of a request to the JSON object the step's schema expects (see `pipeline.schemas`).

The rules are deliberately simple and deterministic (a few English patterns), so tests can
predict every answer from the chat they send.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from memobase_server.pipeline.schemas import STEP_SCHEMAS

Answer = dict[str, Any]

# "[2024/05/01] user: text" or "[2024/05/01] Ada(user): text"
_MESSAGE = re.compile(r"^\[(?P<when>[^\]]*)\]\s*(?P<name>[^:\n\]]+?):\s?(?P<text>.*)$")
# A section header ("Chat:", "Tags:") or a list line: never the continuation of a message.
_HEADER = re.compile(r"^[A-Za-z][\w ]*:\s*$")
_LIST_LINE = re.compile(r"^(?:\d+\.\s|-\s)")


@dataclass(frozen=True)
class ChatLine:
    when: str
    name: str
    text: str

    @property
    def is_user(self) -> bool:
        name = self.name.strip()
        return name == "user" or name.endswith("(user)")


def _is_header(line: str, name: str | None = None) -> bool:
    stripped = line.strip()
    if name is not None:
        return stripped.lower() == f"{name.lower()}:"
    return bool(_HEADER.match(stripped))


def parse_chat(text: str) -> list[ChatLine]:
    """The messages of the `Chat:` section (or, without one, every message line). A line that
    is neither a message, a header nor a list item continues the message before it."""
    lines = text.splitlines()
    has_section = any(_is_header(line, "chat") for line in lines)
    in_chat = not has_section
    found: list[tuple[str, str, list[str]]] = []
    for line in lines:
        stripped = line.strip()
        if has_section and _is_header(stripped, "chat"):
            in_chat = True
            continue
        if not in_chat:
            continue
        match = _MESSAGE.match(stripped)
        if match:
            found.append((match["when"].strip(), match["name"].strip(), [match["text"]]))
        elif _is_header(stripped):
            if has_section:
                in_chat = False
        elif stripped and found and has_section and not _LIST_LINE.match(stripped):
            found[-1][2].append(stripped)
    return [ChatLine(when, name, " ".join(parts).strip()) for when, name, parts in found]


def _section_lines(text: str, header: str) -> list[str]:
    """The lines after a `<header>:` line, up to the next header."""
    lines = text.splitlines()
    for index, line in enumerate(lines):
        if _is_header(line, header):
            section = []
            for following in lines[index + 1 :]:
                if _is_header(following):
                    break
                section.append(following)
            return section
    return []


# --- extract ------------------------------------------------------------------------------------

_APOSTROPHE = "['\u2019]"
_CAP = rf"[A-ZÀ-Þ](?:\w|{_APOSTROPHE}|[&\-])*"
_I_AM = rf"\b(?:I am|I{_APOSTROPHE}m)"
_UNTIL_PUNCT = r"([^.,;!?\n]+)"
_NAME = re.compile(rf"(?i:\bmy name is)\s+({_CAP}(?:\s+{_CAP})?)")
_AGE = re.compile(rf"(?i:{_I_AM}\s+(\d{{1,3}})\s+years?\s+old)")
_CITY = re.compile(rf"(?i:\bI (?:live in|moved to))\s+({_CAP}(?:\s+{_CAP})*)")
_COMPANY = re.compile(rf"(?i:\bI work (?:at|for))\s+{_UNTIL_PUNCT}")
_COMPANY_NAME = re.compile(rf"^{_CAP}(?:\s+{_CAP})*")
_TITLE = re.compile(rf"(?i:{_I_AM}\s+an?)\s+{_UNTIL_PUNCT}")
_LIKE = re.compile(rf"(?i:\bI (?:like|love|enjoy))\s+{_UNTIL_PUNCT}")
_INTERESTS: tuple[tuple[str, re.Pattern[str]], ...] = (
    ("foods", re.compile(r"\b(?:tea|coffee|pizza|sushi|food)", re.I)),
    ("sports", re.compile(r"ball|running|swim|tennis|yoga|sport", re.I)),
    ("books", re.compile(r"book|novel|reading", re.I)),
    ("movies", re.compile(r"movie|film", re.I)),
    ("music", re.compile(r"music|song|jazz|\bband", re.I)),
)
_TAG_LINE = re.compile(r"^\s*-\s*([\w\-]+)\s*:\s*(.*)$")
_TAG_MARKER = re.compile(r"#([\w\-]+)=(\S+)")


def _profile(topic: str, sub_topic: str, memo: str) -> Answer:
    return {"topic": topic, "sub_topic": sub_topic, "memo": memo.strip()}


def profile_candidates(text: str) -> list[Answer]:
    """The profile slots one user message fills, by the English rules of the scripted model."""
    found = [_profile("basic_info", "name", m[1]) for m in _NAME.finditer(text)]
    found += [_profile("basic_info", "age", m[1]) for m in _AGE.finditer(text)]
    found += [_profile("contact_info", "city", m[1]) for m in _CITY.finditer(text)]
    for match in _COMPANY.finditer(text):
        company = match[1].strip()
        named = _COMPANY_NAME.match(company)
        found.append(_profile("work", "company", named[0] if named else company))
    found += [_profile("work", "title", m[1]) for m in _TITLE.finditer(text)]
    for match in _LIKE.finditer(text):
        thing = match[1].strip()
        sub_topic = next((name for name, rule in _INTERESTS if rule.search(thing)), "hobbies")
        found.append(_profile("interest", sub_topic, thing))
    return found


def _listed_tags(text: str) -> set[str]:
    names = set()
    for line in _section_lines(text, "tags"):
        match = _TAG_LINE.match(line)
        if match:
            names.add(match[1])
    return names


def extract(user_text: str) -> Answer:
    chat = parse_chat(user_text)
    facts: list[Answer] = []
    profiles: list[Answer] = []
    for line in chat:
        if not line.is_user or not line.text:
            continue
        facts.append({"text": line.text, "kind": "info", "when": line.when or None})
        profiles += profile_candidates(line.text)
    listed = _listed_tags(user_text)
    tags = [
        {"tag": m[1], "value": m[2].rstrip(".,;:!?)")}
        for line in chat
        for m in _TAG_MARKER.finditer(line.text)
        if m[1] in listed
    ]
    return {"facts": facts, "profiles": profiles, "tags": tags}


# --- merge --------------------------------------------------------------------------------------

_ITEM = re.compile(r"^(\d+)\.\s*(.+?)::(.*)$")
_FIELD = re.compile(r"^(current|new|rule)\s*:\s?(.*)$", re.I)


def merge(user_text: str) -> Answer:
    items: list[dict[str, str]] = []
    for line in user_text.splitlines():
        stripped = line.strip()
        numbered = _ITEM.match(stripped)
        if numbered:
            items.append({"id": numbered[1], "current": "", "new": "", "rule": ""})
            continue
        field = _FIELD.match(stripped)
        if field and items:
            items[-1][field[1].lower()] = field[2].strip()
    decisions = []
    for item in items:
        current, new, rule = item["current"], item["new"], item["rule"].lower()
        if not current:
            action, content = "update", new
        elif new.lower() in current.lower():
            action, content = "abort", ""
        elif "append" in rule or "list" in rule:
            action, content = "append", f"{current}; {new}"
        else:
            action, content = "update", new
        decisions.append({"id": int(item["id"]), "action": action, "content": content})
    return {"decisions": decisions}


# --- organize -----------------------------------------------------------------------------------

_KEEP = re.compile(r"keep at most (\d+)", re.I)
_SLOT = re.compile(r"^-\s*(.+?)::(.*)$")


def organize(user_text: str) -> Answer:
    keep = _KEEP.search(user_text)
    slots = [
        {"sub_topic": m[1].strip(), "content": m[2].strip()}
        for m in (_SLOT.match(line.strip()) for line in user_text.splitlines())
        if m
    ]
    return {"slots": slots[: int(keep[1])] if keep else slots}


# --- resummarize --------------------------------------------------------------------------------

_LIMIT = re.compile(r"limit:\s*(\d+)\s*words", re.I)
_CONTENT = re.compile(r"^content:", re.I | re.M)


def resummarize(user_text: str) -> Answer:
    limit = _LIMIT.search(user_text)
    start = _CONTENT.search(user_text)
    words = user_text[start.end() :].split() if start else []
    return {"content": " ".join(words[: int(limit[1])] if limit else words)}


# --- pick_profiles ------------------------------------------------------------------------------

_PROFILE_LINE = re.compile(r"^(\d+)\.\s*([^:\n]+?)::([^:\n]+?):\s?(.*)$")
_WORD = re.compile(r"\w+")
_MAX_PICKED = 10


def pick_profiles(user_text: str) -> Answer:
    chat = " ".join(line.text for line in parse_chat(user_text)).lower()
    chat_words = set(_WORD.findall(chat))

    def occurs(phrase: str) -> bool:
        phrase = phrase.strip().lower()
        return any(
            variant and re.search(rf"\b{re.escape(variant)}\b", chat)
            for variant in {phrase, phrase.replace("_", " ")}
        )

    ids = []
    for line in user_text.splitlines():
        match = _PROFILE_LINE.match(line.strip())
        if not match:
            continue
        topic, sub_topic, content = match[2], match[3], match[4]
        content_words = {w for w in _WORD.findall(content.lower()) if len(w) >= 4}
        if occurs(topic) or occurs(sub_topic) or content_words & chat_words:
            ids.append(int(match[1]))
    return {"ids": ids[:_MAX_PICKED]}


# --- dispatch -----------------------------------------------------------------------------------

# --- roleplay -------------------------------------------------------------------------------------


def roleplay_judge(user_text: str) -> Answer:
    """A new topic when the user's last line asks for one ("new topic", "bored", "something
    else"); otherwise the scene goes on."""
    users = [line for line in parse_chat(user_text) if line.is_user]
    last = users[-1].text.lower() if users else ""
    wants_new = any(k in last for k in ("new topic", "bored", "something else"))
    return {"action": "new_topic" if wants_new else "continue", "reason": "scripted"}


def roleplay_plot(user_text: str) -> Answer:
    slots = _section_lines(user_text, "Profile")
    theme = slots[0].strip().removeprefix("- ") if slots else "a new adventure"
    return {
        "themes": [theme],
        "overview": f"A story about {theme}",
        "timeline": [f"Start with {theme}", "Raise a question", "Resolve it together"],
    }


STEP_BEHAVIOURS: dict[str, Callable[[str], Answer]] = {
    "extract": extract,
    "merge": merge,
    "organize": organize,
    "resummarize": resummarize,
    "pick_profiles": pick_profiles,
    "roleplay_judge": roleplay_judge,
    "roleplay_plot": roleplay_plot,
}


def answer(step: str, user_text: str) -> Answer:
    """The scripted answer of a step; `{}` for a step the model does not know."""
    behaviour = STEP_BEHAVIOURS.get(step)
    return behaviour(user_text) if behaviour is not None else {}


def schema_violation(step: str) -> Answer:
    """Valid JSON that fails the step's schema: every field has the wrong type."""
    schema = STEP_SCHEMAS.get(step)
    if schema is None:
        return {"unexpected": True}
    return {name: {"unexpected": True} for name in schema.model_fields}


def malformed(content: Answer) -> str:
    """JSON cut in the middle, as a model that ran out of tokens writes it."""
    text = json.dumps(content, ensure_ascii=False)
    return text[: max(1, len(text) // 2)]


def as_prose(json_text: str) -> str:
    """How a model without JSON mode answers: a sentence, then the JSON in a fenced block."""
    return f"Sure! Here is the result:\n```json\n{json_text}\n```\nLet me know if you need more."
