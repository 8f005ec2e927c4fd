"""User messages in the shapes the scripted model reads, one per pipeline step."""

from __future__ import annotations

EXTRACT = """Extract the user's facts, profile and tags.
Tags:
- mood: how the user feels
- place: where the user is

Chat:
[2024/05/01] user: Hi, my name is Ada Lovelace. I am 36 years old and I live in London.
[2024/05/01] assistant: Nice to meet you! #mood=curious
[2024/05/02] Ada(user): I work at Analytical Engines as a writer. I am a mathematician,
and I love jazz music! #mood=great #unlisted=x
[2024/05/03] user: 我喜欢喝茶
"""

MERGE = """Decide how each new memo changes its slot.
1. basic_info::name
current: Ada Lovelace
new: ada lovelace
2. interest::music
current: jazz
new: blues
rule: keep a list of genres
3. work::title
current: writer
new: mathematician
4. contact_info::city
current:
new: London
"""

ORGANIZE = """Regroup the slots of one topic.
Topic: interest
Keep at most 2 sub-topics
- music::jazz, blues
- foods::green tea
- books::novels
"""

RESUMMARIZE = """Condense this slot.
Limit: 4 words
Content:
Ada plays the piano every
evening after work, mostly jazz.
"""

PICK_PROFILES = """Which slots matter for this chat?
1. interest::music: jazz, blues
2. work::title: mathematician
3. basic_info::name: Ada
4. contact_info::city: London
5. interest::sports: tennis
Chat:
[2024/05/04] user: Any good JAZZ clubs near my work?
"""

ROLEPLAY_JUDGE = """Agent: a bard
Chat:
[now] user: I am bored, new topic please"""

ROLEPLAY_PLOT = """Profile:
- interest::music: jazz
Chat:
[now] user: I am bored, new topic please"""

BY_STEP = {
    "extract": EXTRACT,
    "merge": MERGE,
    "organize": ORGANIZE,
    "resummarize": RESUMMARIZE,
    "pick_profiles": PICK_PROFILES,
    "roleplay_judge": ROLEPLAY_JUDGE,
    "roleplay_plot": ROLEPLAY_PLOT,
}
