"""ProfileService: proto <-> domain, nothing else."""

from __future__ import annotations

from typing import Any

from grpc.aio import ServicerContext

from memobase_server.domain.chats import parse_chats
from memobase_server.domain.profile_selection import make_filter
from memobase_server.domain.profiles import ProfileSlot
from memobase_server.gen.memobase.v1 import common_pb2, profile_pb2, profile_pb2_grpc
from memobase_server.services.context import ContextBuilder, ContextRequest
from memobase_server.services.profiles import Profiles
from memobase_server.transport.grpc import convert
from memobase_server.transport.grpc.context import project_id

Context = ServicerContext[Any, Any]


def profile_message(slot: ProfileSlot) -> common_pb2.Profile:
    message = common_pb2.Profile(
        id=slot.id,
        content=slot.content,
        attributes=common_pb2.ProfileAttributes(
            topic=slot.topic, sub_topic=slot.sub_topic, update_hits=slot.update_hits
        ),
    )
    convert.fill_timestamp(message.created_at, slot.created_at)
    convert.fill_timestamp(message.updated_at, slot.updated_at)
    return message


class ProfileServicer(profile_pb2_grpc.ProfileServiceServicer):
    def __init__(self, profiles: Profiles, context_builder: ContextBuilder) -> None:
        self._profiles = profiles
        self._context = context_builder

    async def GetProfile(
        self, request: profile_pb2.GetProfileRequest, context: Context
    ) -> profile_pb2.GetProfileResponse:
        rules = convert.profile_filter(request)
        chats = parse_chats(convert.optional_value(request, "chats_str"))
        slots = await self._profiles.get(project_id(), request.user_id, rules, chats)
        return profile_pb2.GetProfileResponse(profiles=[profile_message(s) for s in slots])

    async def AddProfile(
        self, request: profile_pb2.AddProfileRequest, context: Context
    ) -> profile_pb2.AddProfileResponse:
        slot_id = await self._profiles.add(
            project_id(),
            request.user_id,
            request.content,
            request.attributes.topic,
            request.attributes.sub_topic,
        )
        return profile_pb2.AddProfileResponse(id=slot_id)

    async def UpdateProfile(
        self, request: profile_pb2.UpdateProfileRequest, context: Context
    ) -> profile_pb2.UpdateProfileResponse:
        given = request.HasField("attributes")
        await self._profiles.update(
            project_id(),
            request.user_id,
            request.profile_id,
            request.content,
            request.attributes.topic if given else None,
            request.attributes.sub_topic if given else None,
        )
        return profile_pb2.UpdateProfileResponse()

    async def DeleteProfile(
        self, request: profile_pb2.DeleteProfileRequest, context: Context
    ) -> profile_pb2.DeleteProfileResponse:
        await self._profiles.delete(project_id(), request.user_id, request.profile_id)
        return profile_pb2.DeleteProfileResponse()

    async def GetContext(
        self, request: profile_pb2.GetContextRequest, context: Context
    ) -> profile_pb2.GetContextResponse:
        value = convert.optional_value
        text = await self._context.build(
            project_id(),
            request.user_id,
            ContextRequest(
                rules=make_filter(
                    topk=None,
                    max_token_size=None,
                    prefer_topics=request.prefer_topics,
                    only_topics=request.only_topics,
                    max_subtopic_size=value(request, "max_subtopic_size"),
                    topic_limits_json=value(request, "topic_limits_json"),
                ),
                max_token_size=value(request, "max_token_size"),
                profile_event_ratio=value(request, "profile_event_ratio"),
                chats=parse_chats(value(request, "chats_str")),
                event_similarity_threshold=value(request, "event_similarity_threshold"),
                time_range_in_days=value(request, "time_range_in_days"),
                customize_context_prompt=value(request, "customize_context_prompt"),
                full_profile_and_only_search_event=value(
                    request, "full_profile_and_only_search_event"
                ),
                fill_window_with_events=value(request, "fill_window_with_events"),
            ),
        )
        return profile_pb2.GetContextResponse(context=text)
