"""EventService. Events and gists are written by the memory pipeline."""

from __future__ import annotations

from memobase_server.gen.memobase.v1 import event_pb2_grpc
from memobase_server.transport.grpc.servicers.pending import pending

_EVENTS = "event reads and search (issue 6)"


class EventServicer(event_pb2_grpc.EventServiceServicer):
    ListEvents = pending("ListEvents", _EVENTS)
    UpdateEvent = pending("UpdateEvent", _EVENTS)
    DeleteEvent = pending("DeleteEvent", _EVENTS)
    SearchEvents = pending("SearchEvents", _EVENTS)
    SearchEventGists = pending("SearchEventGists", _EVENTS)
    SearchEventsByTags = pending("SearchEventsByTags", _EVENTS)
