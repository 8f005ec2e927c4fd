"""ProjectService: health for REST clients, project keys, profile config, users listing,
usage and billing; import and role-play land with the pipeline."""

from __future__ import annotations

from typing import Any

from google.protobuf import json_format
from grpc.aio import ServicerContext

from memobase_server.domain.blobs import parse_message
from memobase_server.domain.errors import InvalidArgument, PermissionDenied
from memobase_server.gen.memobase.v1 import project_pb2, project_pb2_grpc
from memobase_server.services.health import DependencyHealth
from memobase_server.services.profile_import import ProfileImporter
from memobase_server.services.project_settings import ProjectSettings, ProjectUsers
from memobase_server.services.projects import Projects
from memobase_server.services.roleplay import Roleplay
from memobase_server.services.usage import UsageReports
from memobase_server.storage.mongo.users import UserSortKey
from memobase_server.transport.grpc import convert
from memobase_server.transport.grpc.context import principal, project_id

Context = ServicerContext[Any, Any]

_USER_ORDERS: dict[int, UserSortKey | None] = {
    project_pb2.USER_ORDER_UNSPECIFIED: None,
    project_pb2.USER_ORDER_UPDATED_AT: "updated_at",
    project_pb2.USER_ORDER_PROFILE_COUNT: "profile_count",
    project_pb2.USER_ORDER_EVENT_COUNT: "event_count",
}


def _user_order(request: project_pb2.ListUsersRequest) -> UserSortKey | None:
    if not request.HasField("order_by"):
        return None
    if request.order_by not in _USER_ORDERS:
        raise InvalidArgument("order_by must be one of updated_at, profile_count, event_count")
    return _USER_ORDERS[request.order_by]


class ProjectServicer(project_pb2_grpc.ProjectServiceServicer):
    def __init__(
        self,
        projects: Projects,
        health: DependencyHealth,
        *,
        project_settings: ProjectSettings,
        project_users: ProjectUsers,
        usage: UsageReports,
        importer: ProfileImporter,
        roleplay: Roleplay,
    ) -> None:
        self._projects = projects
        self._health = health
        self._settings = project_settings
        self._users = project_users
        self._usage = usage
        self._importer = importer
        self._roleplay = roleplay

    async def Healthcheck(
        self, request: project_pb2.HealthcheckRequest, context: Context
    ) -> project_pb2.HealthcheckResponse:
        await self._health.check()
        return project_pb2.HealthcheckResponse()

    async def StatusCheck(
        self, request: project_pb2.StatusCheckRequest, context: Context
    ) -> project_pb2.StatusCheckResponse:
        if not principal().is_root:
            raise PermissionDenied("Only the root token can run the status check")
        await self._health.check()
        return project_pb2.StatusCheckResponse()

    async def CreateProject(
        self, request: project_pb2.CreateProjectRequest, context: Context
    ) -> project_pb2.CreateProjectResponse:
        project_id, key = await self._projects.create(
            principal(), convert.optional_value(request, "project_id")
        )
        return project_pb2.CreateProjectResponse(project_id=project_id, secret_key=key)

    async def ListProjects(
        self, request: project_pb2.ListProjectsRequest, context: Context
    ) -> project_pb2.ListProjectsResponse:
        response = project_pb2.ListProjectsResponse()
        for project in await self._projects.list(principal()):
            info = response.projects.add(project_id=project.project_id, status=project.status)
            convert.fill_timestamp(info.created_at, project.created_at)
        return response

    async def RotateProjectKey(
        self, request: project_pb2.RotateProjectKeyRequest, context: Context
    ) -> project_pb2.RotateProjectKeyResponse:
        key = await self._projects.rotate_key(principal(), request.project_id)
        return project_pb2.RotateProjectKeyResponse(secret_key=key)

    async def RevokeProjectKey(
        self, request: project_pb2.RevokeProjectKeyRequest, context: Context
    ) -> project_pb2.RevokeProjectKeyResponse:
        await self._projects.revoke_key(principal(), request.project_id)
        return project_pb2.RevokeProjectKeyResponse()

    async def GetProfileConfig(
        self, request: project_pb2.GetProfileConfigRequest, context: Context
    ) -> project_pb2.GetProfileConfigResponse:
        settings = self._settings
        text = await settings.get_profile_config(project_id())
        return project_pb2.GetProfileConfigResponse(profile_config=text)

    async def UpdateProfileConfig(
        self, request: project_pb2.UpdateProfileConfigRequest, context: Context
    ) -> project_pb2.UpdateProfileConfigResponse:
        settings = self._settings
        await settings.update_profile_config(
            project_id(), convert.optional_value(request, "profile_config")
        )
        return project_pb2.UpdateProfileConfigResponse()

    async def GetBilling(
        self, request: project_pb2.GetBillingRequest, context: Context
    ) -> project_pb2.GetBillingResponse:
        billing = await self._usage.billing(project_id())
        response = project_pb2.GetBillingResponse(project_token_cost_month=billing.month_tokens)
        if billing.token_left is not None:
            response.token_left = billing.token_left
        convert.fill_timestamp(response.next_refill_at, billing.next_refill_at)
        return response

    async def ListUsers(
        self, request: project_pb2.ListUsersRequest, context: Context
    ) -> project_pb2.ListUsersResponse:
        users, count = await self._users.list(
            project_id(),
            search=request.search,
            order_by=_user_order(request),
            descending=convert.optional_value(request, "order_desc"),
            limit=convert.optional_value(request, "limit"),
            offset=request.offset,
        )
        response = project_pb2.ListUsersResponse(count=count)
        for listed in users:
            user = listed.user
            item = response.users.add(
                id=user.user_id,
                project_id=user.project_id,
                profile_count=listed.profile_count,
                event_count=listed.event_count,
            )
            if user.data is not None:
                convert.fill_struct(item.additional_fields, user.data)
            convert.fill_timestamp(item.created_at, user.created_at)
            convert.fill_timestamp(item.updated_at, user.updated_at)
        return response

    async def GetDailyUsage(
        self, request: project_pb2.GetDailyUsageRequest, context: Context
    ) -> project_pb2.GetDailyUsageResponse:
        days = await self._usage.daily(project_id(), convert.optional_value(request, "last_days"))
        return project_pb2.GetDailyUsageResponse(
            usages=[
                project_pb2.DailyUsage(
                    date=d.day.isoformat(),
                    total_insert=d.usage.inserts,
                    total_success_insert=d.usage.successful_inserts,
                    total_input_token=d.usage.input_tokens,
                    total_output_token=d.usage.output_tokens,
                )
                for d in days
            ]
        )

    async def ImportProfile(
        self, request: project_pb2.ImportProfileRequest, context: Context
    ) -> project_pb2.ImportProfileResponse:
        await self._importer.import_text(project_id(), request.user_id, request.context)
        return project_pb2.ImportProfileResponse()

    async def ProactiveTopic(
        self, request: project_pb2.ProactiveTopicRequest, context: Context
    ) -> project_pb2.ProactiveTopicResponse:
        messages = [
            parse_message(
                json_format.MessageToDict(m, preserving_proto_field_name=True), f"messages[{i}]"
            )
            for i, m in enumerate(request.chat.messages)
        ]
        rules = convert.profile_filter(request)
        answer = await self._roleplay.proactive(
            project_id(),
            request.user_id,
            messages,
            convert.optional_value(request.chat, "agent_context"),
            rules,
        )
        return project_pb2.ProactiveTopicResponse(
            action=answer.action, topic_prompt=answer.topic_prompt
        )
