"""Crash points for the fault suite. With `MEMOBASE_CRASH_POINTS=after_compute` (a comma list)
the process dies on the spot, as with `kill -9`, when a flush reaches that point. The variable
is read once at start-up; leave it unset outside tests."""

from __future__ import annotations

import os

CRASH_POINTS = frozenset(p for p in os.environ.get("MEMOBASE_CRASH_POINTS", "").split(",") if p)
# Where a flush can be made to die: after claiming its chats, after storing its plan, after
# writing the event and gists, after writing the profile (before the entries are settled).
KNOWN_POINTS = ("after_claim", "after_compute", "after_event", "after_profile")


def crash_point(name: str) -> None:
    if name in CRASH_POINTS:
        os._exit(137)
