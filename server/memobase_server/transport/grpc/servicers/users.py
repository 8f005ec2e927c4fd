"""UserService: proto <-> domain, nothing else."""

from __future__ import annotations

from typing import Any

from grpc.aio import ServicerContext

from memobase_server.gen.memobase.v1 import user_pb2, user_pb2_grpc
from memobase_server.services.users import Users
from memobase_server.transport.grpc import convert
from memobase_server.transport.grpc.context import project_id

Context = ServicerContext[Any, Any]


class UserServicer(user_pb2_grpc.UserServiceServicer):
    def __init__(self, users: Users) -> None:
        self._users = users

    async def CreateUser(
        self, request: user_pb2.CreateUserRequest, context: Context
    ) -> user_pb2.CreateUserResponse:
        user_id = await self._users.create(
            project_id(),
            convert.optional_value(request, "id"),
            convert.struct_or_none(request, "data"),
        )
        return user_pb2.CreateUserResponse(id=user_id)

    async def GetUser(
        self, request: user_pb2.GetUserRequest, context: Context
    ) -> user_pb2.GetUserResponse:
        user = await self._users.get(project_id(), request.user_id)
        response = user_pb2.GetUserResponse(id=user.user_id)
        if user.data is not None:
            convert.fill_struct(response.data, user.data)
        convert.fill_timestamp(response.created_at, user.created_at)
        convert.fill_timestamp(response.updated_at, user.updated_at)
        return response

    async def UpdateUser(
        self, request: user_pb2.UpdateUserRequest, context: Context
    ) -> user_pb2.UpdateUserResponse:
        user_id = await self._users.update(
            project_id(), request.user_id, convert.struct_or_none(request, "data")
        )
        return user_pb2.UpdateUserResponse(id=user_id)

    async def DeleteUser(
        self, request: user_pb2.DeleteUserRequest, context: Context
    ) -> user_pb2.DeleteUserResponse:
        await self._users.delete(project_id(), request.user_id)
        return user_pb2.DeleteUserResponse()
