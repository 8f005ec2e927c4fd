"""Varied, realistic English chats for seeding memory: one persona per user (name, age, city,
job, hobbies, plans), told over a series of chat blobs, in the English patterns the scripted
model recognises ("my name is X", "I live in X" / "I moved to X", "I work at X", "I am a X",
"I like/love/enjoy X", "I am N years old"), with small talk and plans around them.

Deterministic: the same seed and user index always give the same chats.
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass
from typing import Any

FIRST_NAMES = (
    "Ada", "Bruno", "Chiara", "Dmitri", "Elena", "Farid", "Greta", "Hiro", "Ines", "Jonas",
    "Kavya", "Liam", "Maya", "Nikolai", "Olivia", "Pedro", "Quinn", "Rosa", "Samir", "Tess",
    "Umar", "Vera", "Wen", "Ximena", "Yusuf", "Zoe", "Amara", "Felix", "Lucia", "Mateo",
)  # fmt: skip
LAST_NAMES = (
    "Lovelace", "Moreau", "Rossi", "Ivanov", "Garcia", "Haddad", "Lindqvist", "Tanaka",
    "Silva", "Becker", "Iyer", "Murphy", "Cohen", "Petrov", "Walsh", "Costa", "Okafor",
    "Novak", "Khan", "Dubois", "Nakamura", "Jensen", "Fischer", "Mendes", "Kowalski",
)  # fmt: skip
CITIES = (
    "Lisbon", "Berlin", "Toronto", "Melbourne", "Osaka", "Nairobi", "Buenos Aires",
    "Copenhagen", "Seattle", "Edinburgh", "Barcelona", "Singapore", "Montreal", "Vienna",
    "Cape Town", "Dublin", "Austin", "Kyoto", "Amsterdam", "Mexico City", "Porto", "Oslo",
)  # fmt: skip
COMPANIES = (
    "Acme Robotics", "Northwind Labs", "Blue Harbor Health", "Globex", "Initech",
    "Tidewater Energy", "Lumen Analytics", "Brightpath Schools", "Orchid Bank",
    "Redwood Logistics", "Helios Solar", "Pinecone Games", "Vertex Pharma", "Atlas Maps",
)  # fmt: skip
TITLES = (
    "software engineer", "data analyst", "nurse", "product designer", "high school teacher",
    "civil engineer", "pharmacist", "marketing manager", "research scientist", "chef",
    "accountant", "UX researcher", "project manager", "veterinarian", "architect",
)  # fmt: skip
LIKES = (
    "green tea", "sushi with friends", "spicy Thai food", "strong black coffee",
    "playing tennis on Sundays", "swimming before work", "yoga in the park", "trail running",
    "reading science fiction novels", "historical novels", "old French movies",
    "horror films", "jazz music", "indie rock bands", "classical piano music",
    "gardening on my balcony", "landscape photography", "chess puzzles",
    "baking sourdough bread", "hiking in the mountains", "painting watercolours",
    "board games with my neighbours", "birdwatching",
)  # fmt: skip
DESTINATIONS = (
    "Iceland", "Japan", "Patagonia", "the Amalfi coast", "Morocco", "Vietnam", "Norway",
    "Peru", "the Scottish Highlands", "New Zealand", "Greece", "Costa Rica",
)  # fmt: skip
RELATIVES = ("sister", "brother", "mother", "father", "best friend", "partner", "cousin")
PETS = ("a cat named Miso", "a beagle called Pepper", "two goldfish", "an old tabby cat")

SMALL_TALK = (
    "Yesterday I ran ten kilometres along the river and my legs are still sore.",
    "My {relative} is visiting next weekend and I want to cook something special.",
    "We are planning a trip to {destination} in the summer with my {relative}.",
    "I need to finish the quarterly report by Friday, it is stressing me out.",
    "Last night I watched a documentary about deep sea creatures.",
    "I signed up for a pottery class that starts in two weeks.",
    "I have {pet} and they keep waking me up at six.",
    "Next month I'm flying to a conference in {destination} to give a talk.",
    "I finally fixed the leaking kitchen tap myself this morning.",
    "My {relative} just had a baby girl, so I have a new niece!",
    "I want to learn Spanish before my trip to {destination}.",
    "I started journaling every evening and it helps me sleep better.",
    "The rent in {city} went up again, so I am thinking about a smaller flat.",
    "I'm trying to cut down on sugar this month.",
    "On Saturday I volunteered at the food bank near my place.",
    "I bought a second-hand bike to commute to work.",
    "My team at work is hiring two people and I am doing the interviews.",
    "I'm saving money for a new laptop because mine is six years old.",
)  # fmt: skip
ASSISTANT_REPLIES = (
    "That sounds wonderful! How long have you been doing that?",
    "Thanks for sharing. Do you want me to remember anything else about it?",
    "Nice! Is there anything I can help you plan?",
    "Got it. How do you feel about it so far?",
    "Interesting! Tell me more when you have time.",
    "Noted. Would you like some suggestions?",
    "That must be a lot to handle. Anything I can do?",
    "Great to hear! What is next on your list?",
)  # fmt: skip
CONTEXT_OPENERS = (
    "Any ideas for this weekend? I'd like to do something with {like}.",
    "Can you suggest a plan for my trip to {destination}?",
    "What should I cook when my {relative} comes over?",
    "I have a free evening in {city}, what could I do?",
)  # fmt: skip


@dataclass(frozen=True)
class Persona:
    first: str
    last: str
    age: int
    city: str
    new_city: str
    company: str
    new_company: str
    title: str
    likes: tuple[str, ...]
    destination: str
    relative: str
    pet: str


def persona(rng: random.Random) -> Persona:
    city, new_city = rng.sample(CITIES, 2)
    company, new_company = rng.sample(COMPANIES, 2)
    return Persona(
        first=rng.choice(FIRST_NAMES),
        last=rng.choice(LAST_NAMES),
        age=rng.randint(19, 67),
        city=city,
        new_city=new_city,
        company=company,
        new_company=new_company,
        title=rng.choice(TITLES),
        likes=tuple(rng.sample(LIKES, 5)),
        destination=rng.choice(DESTINATIONS),
        relative=rng.choice(RELATIVES),
        pet=rng.choice(PETS),
    )


def _fill(template: str, p: Persona, rng: random.Random) -> str:
    return template.format(
        relative=p.relative,
        destination=p.destination,
        pet=p.pet,
        city=p.city,
        like=rng.choice(p.likes),
    )


def _facts(p: Persona) -> list[str]:
    """The profile-bearing lines, in the order a person would mention them."""
    return [
        f"Hi! My name is {p.first} {p.last}, nice to meet you.",
        f"I am {p.age} years old and I live in {p.city}.",
        f"I am a {p.title}. I work at {p.company}, mostly with a small team.",
        *(f"I love {like}." for like in p.likes[:2]),
        f"I enjoy {p.likes[2]} when the weather is good.",
        f"I like {p.likes[3]}, it helps me relax after work.",
        f"Big news: I moved to {p.new_city} last week!",
        f"I changed jobs too. I work at {p.new_company} now.",
        f"These days I enjoy {p.likes[4]} a lot.",
    ]


@dataclass(frozen=True)
class UserChats:
    blobs: tuple[tuple[dict[str, str], ...], ...]
    """Chat blobs, each a list of messages."""
    query: str
    """A search query about something this user said."""
    chats_str: str
    """Two messages (JSON) to ask for a context with."""


def user_chats(seed: int, index: int, blobs: int) -> UserChats:
    rng = random.Random(seed * 1_000_003 + index)
    p = persona(rng)
    facts = _facts(p)
    talk = list(SMALL_TALK)
    rng.shuffle(talk)
    # Spread the facts over the blobs, in order; small talk fills the rest.
    slots = sorted(rng.sample(range(blobs), min(len(facts), blobs)))
    fact_at = dict(zip(slots, facts, strict=False))
    made: list[tuple[dict[str, str], ...]] = []
    for n in range(blobs):
        lines = [fact_at[n]] if n in fact_at else []
        for _ in range(rng.randint(0, 1) if lines else rng.randint(1, 2)):
            lines.append(_fill(talk.pop() if talk else rng.choice(SMALL_TALK), p, rng))
        messages: list[dict[str, str]] = []
        for line in lines:
            messages.append({"role": "user", "content": line})
            messages.append({"role": "assistant", "content": rng.choice(ASSISTANT_REPLIES)})
        made.append(tuple(messages))
    subject = rng.choice([*p.likes[:4], f"trip to {p.destination}"])
    chats: list[dict[str, Any]] = [
        {"role": "user", "content": _fill(rng.choice(CONTEXT_OPENERS), p, rng)},
        {"role": "assistant", "content": "Sure, let me think about a few options for you."},
    ]
    return UserChats(tuple(made), subject, json.dumps(chats))
