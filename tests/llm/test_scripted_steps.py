"""The scripted model's step behaviours, vectors and fault bookkeeping, as pure functions."""

from __future__ import annotations

import json

import pytest

from memobase_server.devtools.scripted_llm import steps, vectors
from memobase_server.devtools.scripted_llm.state import FaultConfig, ScriptedState
from memobase_server.pipeline.schemas import STEP_SCHEMAS
from tests.llm import prompts


@pytest.mark.parametrize("step", sorted(STEP_SCHEMAS))
def test_every_answer_validates_against_its_schema(step: str) -> None:
    STEP_SCHEMAS[step].model_validate(steps.answer(step, prompts.BY_STEP[step]))


def test_unknown_step_answers_an_empty_object() -> None:
    assert steps.answer("summarize_everything", "anything") == {}


def test_parse_chat_reads_aliases_dates_and_continuations() -> None:
    chat = steps.parse_chat(prompts.EXTRACT)
    assert [(line.when, line.name, line.is_user) for line in chat] == [
        ("2024/05/01", "user", True),
        ("2024/05/01", "assistant", False),
        ("2024/05/02", "Ada(user)", True),
        ("2024/05/03", "user", True),
    ]
    assert chat[2].text.endswith("mathematician, and I love jazz music! #mood=great #unlisted=x")


def test_extract_facts_are_the_user_lines() -> None:
    facts = steps.extract(prompts.EXTRACT)["facts"]
    assert facts[0] == {
        "text": "Hi, my name is Ada Lovelace. I am 36 years old and I live in London.",
        "kind": "info",
        "when": "2024/05/01",
    }
    assert [f["text"] for f in facts][2] == "我喜欢喝茶"
    assert len(facts) == 3


def test_extract_without_a_chat_header_reads_every_message_line() -> None:
    answer = steps.extract("[2024/01/01] user: I moved to New York City.\n")
    assert answer["profiles"] == [
        {"topic": "contact_info", "sub_topic": "city", "memo": "New York City"}
    ]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("my name is Grace Hopper and I code", [("basic_info", "name", "Grace Hopper")]),
        ("My Name Is Linus", [("basic_info", "name", "Linus")]),
        ("my name is bob", []),
        ("I'm 29 years old", [("basic_info", "age", "29")]),
        ("i am 7 year old", [("basic_info", "age", "7")]),
        ("I live in São Paulo now", [("contact_info", "city", "São Paulo")]),
        ("I work for Acme Corp, remotely", [("work", "company", "Acme Corp")]),
        ("I work at a small startup.", [("work", "company", "a small startup")]),
        ("I am an ICU nurse; it is hard", [("work", "title", "ICU nurse")]),
        ("I like green tea", [("interest", "foods", "green tea")]),
        ("I love playing basketball", [("interest", "sports", "playing basketball")]),
        ("I enjoy reading sci-fi novels", [("interest", "books", "reading sci-fi novels")]),
        ("I love old films!", [("interest", "movies", "old films")]),
        ("I like the band Queen", [("interest", "music", "the band Queen")]),
        ("I enjoy knitting", [("interest", "hobbies", "knitting")]),
        ("The weather is nice", []),
    ],
)
def test_profile_rules(text: str, expected: list[tuple[str, str, str]]) -> None:
    found = [(p["topic"], p["sub_topic"], p["memo"]) for p in steps.profile_candidates(text)]
    assert found == expected


def test_tags_need_a_listed_name() -> None:
    answer = steps.extract(prompts.EXTRACT)
    assert answer["tags"] == [
        {"tag": "mood", "value": "curious"},
        {"tag": "mood", "value": "great"},
    ]
    no_tags_section = prompts.EXTRACT.replace("Tags:", "Notes:")
    assert steps.extract(no_tags_section)["tags"] == []


def test_merge_decisions() -> None:
    assert steps.merge(prompts.MERGE)["decisions"] == [
        {"id": 1, "action": "abort", "content": ""},
        {"id": 2, "action": "append", "content": "jazz; blues"},
        {"id": 3, "action": "update", "content": "mathematician"},
        {"id": 4, "action": "update", "content": "London"},
    ]
    appended = steps.merge("7. interest::sports\ncurrent: tennis\nnew: golf\nrule: append")
    assert appended["decisions"] == [{"id": 7, "action": "append", "content": "tennis; golf"}]


def test_organize_keeps_the_first_k_slots() -> None:
    assert steps.organize(prompts.ORGANIZE)["slots"] == [
        {"sub_topic": "music", "content": "jazz, blues"},
        {"sub_topic": "foods", "content": "green tea"},
    ]
    assert len(steps.organize(prompts.ORGANIZE.replace("at most 2", "at most 9"))["slots"]) == 3


def test_resummarize_keeps_the_first_n_words() -> None:
    assert steps.resummarize(prompts.RESUMMARIZE) == {"content": "Ada plays the piano"}
    assert steps.resummarize("Limit: 2 words\nContent: one two three") == {"content": "one two"}


def test_pick_profiles_matches_topics_sub_topics_and_content_words() -> None:
    assert steps.pick_profiles(prompts.PICK_PROFILES) == {"ids": [1, 2]}
    by_sub_topic = "1. contact_info::city: Lisbon\nChat:\n[2024/01/01] user: which city?"
    assert steps.pick_profiles(by_sub_topic) == {"ids": [1]}
    many = "\n".join(f"{n}. interest::music: jazz" for n in range(1, 15))
    picked = steps.pick_profiles(f"{many}\nChat:\n[2024/01/01] user: jazz!")
    assert picked == {"ids": list(range(1, 11))}


@pytest.mark.parametrize("step", sorted(STEP_SCHEMAS))
def test_fault_outputs_are_invalid(step: str) -> None:
    schema = STEP_SCHEMAS[step]
    with pytest.raises(ValueError):
        schema.model_validate(steps.schema_violation(step))
    with pytest.raises(ValueError):
        json.loads(steps.malformed(steps.answer(step, prompts.BY_STEP[step])))


def test_vectors_are_deterministic_unit_vectors() -> None:
    first = vectors.embed_text("I love jazz music", 256)
    assert first == vectors.embed_text("I love jazz music", 256)
    assert len(first) == 256
    assert abs(sum(x * x for x in first) - 1) < 1e-9
    assert abs(sum(x * x for x in vectors.embed_text("", 8)) - 1) < 1e-9


def test_vectors_of_related_texts_are_closer() -> None:
    def sim(a: str, b: str) -> float:
        return vectors.cosine(vectors.embed_text(a), vectors.embed_text(b))

    related = sim("The user loves jazz music", "Which jazz music does the user love?")
    unrelated = sim("The user loves jazz music", "Quarterly tax filing deadline")
    assert related > 0.5
    assert abs(unrelated) < 0.2
    assert related > unrelated + 0.3


def test_base64_round_trip() -> None:
    vector = vectors.embed_text("round trip", 16)
    decoded = vectors.from_base64(vectors.to_base64(vector))
    assert decoded == pytest.approx(vector, abs=1e-6)


def test_fault_counts_and_filters() -> None:
    state = ScriptedState()
    assert state.decide("chat", "extract").fault == "none"

    state.set_faults(FaultConfig(mode="http_500", count=2, steps=["merge"], latency_ms=50))
    assert state.decide("chat", "extract").fault == "none"
    assert state.decide("embeddings", None).fault == "none"
    first = state.decide("chat", "merge")
    assert (first.fault, first.latency_s) == ("http_500", 0.05)
    assert state.decide("chat", "merge").fault == "http_500"
    assert state.decide("chat", "merge").fault == "none"  # count used up, latency stays
    assert state.decide("chat", "merge").latency_s == 0.05

    state.set_faults(FaultConfig(mode="timeout", endpoint="embeddings", timeout_s=3))
    assert state.decide("chat", "merge").fault == "none"
    for _ in range(5):
        decision = state.decide("embeddings", None)
        assert (decision.fault, decision.hold_s) == ("timeout", 3)
    assert state.remaining == -1

    state.reset_faults()
    assert state.decide("embeddings", None).fault == "none"


def test_roleplay_steps() -> None:
    assert steps.answer("roleplay_judge", prompts.ROLEPLAY_JUDGE)["action"] == "new_topic"
    calm = prompts.ROLEPLAY_JUDGE.replace("I am bored, new topic please", "Tell me more")
    assert steps.answer("roleplay_judge", calm)["action"] == "continue"
    plot = steps.answer("roleplay_plot", prompts.ROLEPLAY_PLOT)
    assert plot["themes"] == ["interest::music: jazz"]
