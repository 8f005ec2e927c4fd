"""ProjectService: health for REST clients, project keys; the rest lands later."""

from __future__ import annotations

from typing import Any

from grpc.aio import ServicerContext

from memobase_server.domain.errors import PermissionDenied
from memobase_server.gen.memobase.v1 import project_pb2, project_pb2_grpc
from memobase_server.services.health import DependencyHealth
from memobase_server.services.projects import Projects
from memobase_server.transport.grpc import convert
from memobase_server.transport.grpc.context import principal
from memobase_server.transport.grpc.servicers.pending import pending

Context = ServicerContext[Any, Any]
_PROJECT = "project configuration and usage (issue 6)"
_PIPELINE = "the memory pipeline (issue 5)"


class ProjectServicer(project_pb2_grpc.ProjectServiceServicer):
    def __init__(self, projects: Projects, health: DependencyHealth) -> None:
        self._projects = projects
        self._health = health

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

    GetProfileConfig = pending("GetProfileConfig", _PROJECT)
    UpdateProfileConfig = pending("UpdateProfileConfig", _PROJECT)
    GetBilling = pending("GetBilling", _PROJECT)
    ListUsers = pending("ListUsers", _PROJECT)
    GetDailyUsage = pending("GetDailyUsage", _PROJECT)
    ImportProfile = pending("ImportProfile", _PIPELINE)
    ProactiveTopic = pending("ProactiveTopic", _PIPELINE)
