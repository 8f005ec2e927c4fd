"""Long operations run from the command line, with a progress display: a bulk import of chats
and a reprocess of failed buffers. Both go through the same services as the API."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from pathlib import Path

from memobase_server.app import Application
from memobase_server.domain.errors import AlreadyExists, MemobaseError
from memobase_server.domain.models import BlobType
from memobase_server.progress import Progress

log = logging.getLogger(__name__)


async def import_chats(app: Application, path: Path, project_id: str, *, flush: bool) -> int:
    """Each line of `path` is `{"user_id": ..., "messages": [...]}`; users are created as
    needed. Returns the number of lines that failed."""
    text = await asyncio.to_thread(path.read_text, encoding="utf-8")
    lines = [line for line in text.splitlines() if line.strip()]
    progress = Progress(len(lines), "import")
    users: set[str] = set()
    failures = 0
    for number, line in enumerate(lines, start=1):
        try:
            record = json.loads(line)
            user_id = str(record["user_id"])
            if user_id not in users:
                with contextlib.suppress(AlreadyExists):
                    await app.users.create(project_id, user_id, None)
                users.add(user_id)
            await app.blobs.insert(
                project_id,
                user_id,
                BlobType.CHAT,
                {"messages": record["messages"]},
                None,
                idempotency_key=f"import:{path.name}:{number}",
            )
            progress.advance()
        except (ValueError, KeyError, TypeError, MemobaseError) as exc:
            failures += 1
            log.warning("line %d not imported: %s", number, getattr(exc, "message", exc))
            progress.advance(failed=True)
    progress.close()
    if flush:
        await flush_users(app, project_id, sorted(users), "flush")
    return failures


async def reprocess_failed(app: Application, project_id: str | None) -> int:
    """Flushes every buffer that holds failed chats (all of them, whatever their attempts)."""
    pending = await app.buffer.pending(max_attempts=2**31)
    targets = sorted(
        (p, u, t)
        for (p, u, t), summary in pending.items()
        if summary.unfinished and (project_id is None or p == project_id)
    )
    failures = 0
    progress = Progress(len(targets), "reprocess")
    for target_project, user_id, blob_type in targets:
        try:
            await app.flushes.flush_now(target_project, user_id, BlobType(blob_type))
            progress.advance()
        except MemobaseError as exc:
            failures += 1
            log.warning("user %s still failing: %s", user_id, exc.message)
            progress.advance(failed=True)
    progress.close()
    return failures


async def flush_users(app: Application, project_id: str, user_ids: list[str], label: str) -> int:
    failures = 0
    progress = Progress(len(user_ids), label)
    for user_id in user_ids:
        try:
            await app.flushes.flush_now(project_id, user_id, BlobType.CHAT)
            progress.advance()
        except MemobaseError as exc:
            failures += 1
            log.warning("flush of %s failed: %s", user_id, exc.message)
            progress.advance(failed=True)
    progress.close()
    return failures
