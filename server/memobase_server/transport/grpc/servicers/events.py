"""EventService: proto <-> domain, nothing else."""

from __future__ import annotations

from typing import Any

from grpc.aio import ServicerContext

from memobase_server.domain.events import DeltaEntry, Event
from memobase_server.gen.memobase.v1 import common_pb2, event_pb2, event_pb2_grpc
from memobase_server.services.events import EventEdit, Events
from memobase_server.storage.ports import GistHit
from memobase_server.transport.grpc import convert
from memobase_server.transport.grpc.context import project_id

Context = ServicerContext[Any, Any]


def event_message(event: Event, similarity: float | None = None) -> common_pb2.Event:
    message = common_pb2.Event(
        id=event.event_id,
        event_data=common_pb2.EventData(
            profile_delta=[
                common_pb2.ProfileDelta(
                    content=d.content,
                    attributes=common_pb2.ProfileAttributes(topic=d.topic, sub_topic=d.sub_topic),
                )
                for d in event.profile_delta
            ],
            event_tip=event.event_tip,
            event_tags=[common_pb2.EventTag(tag=t, value=v) for t, v in event.event_tags],
        ),
        similarity=similarity,
    )
    convert.fill_timestamp(message.created_at, event.created_at)
    convert.fill_timestamp(message.updated_at, event.updated_at)
    return message


def gist_message(hit: GistHit) -> common_pb2.EventGist:
    message = common_pb2.EventGist(
        id=hit.gist_id,
        gist_data=common_pb2.EventGistData(content=hit.content),
        similarity=hit.similarity,
    )
    convert.fill_timestamp(message.created_at, hit.created_at)
    convert.fill_timestamp(message.updated_at, hit.created_at)
    return message


def _edit(request: event_pb2.UpdateEventRequest) -> EventEdit:
    data = request.event_data
    given = set(request.update_mask.paths) if request.HasField("update_mask") else None

    def has(field: str) -> bool:
        if given is not None:
            return field in given
        if field == "event_tip":
            return data.HasField("event_tip")
        return len(getattr(data, field)) > 0

    return EventEdit(
        event_tip=data.event_tip if has("event_tip") else None,
        event_tags=tuple((t.tag, t.value) for t in data.event_tags) if has("event_tags") else None,
        profile_delta=tuple(
            DeltaEntry(d.content, d.attributes.topic, d.attributes.sub_topic)
            for d in data.profile_delta
        )
        if has("profile_delta")
        else None,
    )


class EventServicer(event_pb2_grpc.EventServiceServicer):
    def __init__(self, events: Events) -> None:
        self._events = events

    async def ListEvents(
        self, request: event_pb2.ListEventsRequest, context: Context
    ) -> event_pb2.ListEventsResponse:
        events = await self._events.recent(
            project_id(),
            request.user_id,
            convert.optional_value(request, "topk"),
            convert.optional_value(request, "max_token_size"),
        )
        return event_pb2.ListEventsResponse(events=[event_message(e) for e in events])

    async def UpdateEvent(
        self, request: event_pb2.UpdateEventRequest, context: Context
    ) -> event_pb2.UpdateEventResponse:
        await self._events.update(project_id(), request.user_id, request.event_id, _edit(request))
        return event_pb2.UpdateEventResponse()

    async def DeleteEvent(
        self, request: event_pb2.DeleteEventRequest, context: Context
    ) -> event_pb2.DeleteEventResponse:
        await self._events.delete(project_id(), request.user_id, request.event_id)
        return event_pb2.DeleteEventResponse()

    async def SearchEvents(
        self, request: event_pb2.SearchEventsRequest, context: Context
    ) -> event_pb2.SearchEventsResponse:
        found = await self._events.search_events(
            project_id(),
            request.user_id,
            request.query,
            convert.optional_value(request, "topk"),
            convert.optional_value(request, "similarity_threshold"),
            convert.optional_value(request, "time_range_in_days"),
        )
        return event_pb2.SearchEventsResponse(
            events=[event_message(f.event, f.similarity) for f in found]
        )

    async def SearchEventGists(
        self, request: event_pb2.SearchEventGistsRequest, context: Context
    ) -> event_pb2.SearchEventGistsResponse:
        hits = await self._events.search_gists(
            project_id(),
            request.user_id,
            request.query,
            convert.optional_value(request, "topk"),
            convert.optional_value(request, "similarity_threshold"),
            convert.optional_value(request, "time_range_in_days"),
        )
        return event_pb2.SearchEventGistsResponse(gists=[gist_message(h) for h in hits])

    async def SearchEventsByTags(
        self, request: event_pb2.SearchEventsByTagsRequest, context: Context
    ) -> event_pb2.SearchEventsByTagsResponse:
        events = await self._events.by_tags(
            project_id(),
            request.user_id,
            convert.optional_value(request, "tags"),
            convert.optional_value(request, "tag_values"),
            convert.optional_value(request, "topk"),
        )
        return event_pb2.SearchEventsByTagsResponse(events=[event_message(e) for e in events])
