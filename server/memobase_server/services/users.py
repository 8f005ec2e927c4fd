"""Users: create, read, replace data, delete with everything of theirs."""

from __future__ import annotations

from collections.abc import Sequence

from memobase_server.domain.errors import NotFound
from memobase_server.domain.ids import new_id, parse_uuid
from memobase_server.domain.models import JsonObject, User, utcnow
from memobase_server.storage.ports import KnownUsers, UserDataPurger, UserRepo


def unwrap_user_data(body: JsonObject | None) -> JsonObject | None:
    """The Memobase SDK sends `{"data": {...}}` on update; other clients send the object itself.
    A body whose only key is `data`, holding an object or null, is the SDK's wrapper."""
    if body is not None and set(body) == {"data"}:
        inner = body["data"]
        if inner is None or isinstance(inner, dict):
            return inner
    return body


class Users:
    def __init__(
        self, users: UserRepo, known: KnownUsers, erasers: Sequence[UserDataPurger]
    ) -> None:
        self._users = users
        self._known = known
        self._erasers = list(erasers)

    def add_eraser(self, eraser: UserDataPurger) -> None:
        """Something else that holds per-user data (a cache, the vector index)."""
        self._erasers.append(eraser)

    async def create(self, project_id: str, user_id: str | None, data: JsonObject | None) -> str:
        user_id = parse_uuid(user_id, "id") if user_id else new_id()
        now = utcnow()
        await self._users.insert(User(project_id, user_id, data, now, now))
        await self._known.remember(project_id, user_id)
        return user_id

    async def get(self, project_id: str, user_id: str) -> User:
        user_id = parse_uuid(user_id, "user_id")
        user = await self._users.get(project_id, user_id)
        if user is None:
            raise NotFound(f"User {user_id} not found")
        return user

    async def update(self, project_id: str, user_id: str, body: JsonObject | None) -> str:
        user_id = parse_uuid(user_id, "user_id")
        if not await self._users.replace_data(
            project_id, user_id, unwrap_user_data(body), utcnow()
        ):
            raise NotFound(f"User {user_id} not found")
        return user_id

    async def delete(self, project_id: str, user_id: str) -> None:
        user_id = parse_uuid(user_id, "user_id")
        # The user goes first (from the cache, then the database, then the cache again in case
        # a reader put it back meanwhile): from then on inserts for this user are refused, so
        # the purge that follows does not race with new data.
        await self._known.forget(project_id, user_id)
        deleted = await self._users.delete(project_id, user_id)
        await self._known.forget(project_id, user_id)
        if not deleted:
            raise NotFound(f"User {user_id} not found")
        for eraser in self._erasers:
            await eraser.purge(project_id, user_id)

    async def require(self, project_id: str, user_id: str) -> None:
        """Raises NotFound for an unknown user; one Redis round trip for a known one."""
        if await self._known.known(project_id, user_id):
            return
        if not await self._users.exists(project_id, user_id):
            raise NotFound(f"User {user_id} not found")
        await self._known.remember(project_id, user_id)
