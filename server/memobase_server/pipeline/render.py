"""Renders blobs as the text the pipeline shows the LLM (and whose tokens fill the buffer)."""

from __future__ import annotations

from datetime import datetime, tzinfo

from memobase_server.domain.models import BlobType, JsonObject


def render_date(moment: datetime, zone: tzinfo | None) -> str:
    return moment.astimezone(zone).strftime("%Y/%m/%d")


def render_message(message: JsonObject, default_when: str) -> str:
    """`[when] name: content`, name being `alias(role)` or the role."""
    role = message["role"]
    alias = message.get("alias")
    name = f"{alias}({role})" if alias else role
    when = message.get("created_at") or default_when
    return f"[{when}] {name}: {message['content']}"


def render_blob(
    blob_type: BlobType, blob_data: JsonObject, stored_at: datetime, zone: tzinfo | None
) -> str:
    date = render_date(stored_at, zone)
    if blob_type is BlobType.CHAT:
        return "\n".join(render_message(m, date) for m in blob_data["messages"])
    if blob_type is BlobType.SUMMARY:
        summary = " ".join(str(blob_data["summary"]).splitlines())
        return f"- {summary}[{date}]"
    return str(blob_data.get("content", ""))
