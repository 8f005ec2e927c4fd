"""ProjectRepo on MongoDB: `_id` = project id; only the hash of a project's key is stored."""

from __future__ import annotations

from pymongo import ASCENDING
from pymongo.errors import DuplicateKeyError

from memobase_server.domain.errors import AlreadyExists
from memobase_server.domain.models import Project, ProjectStatus
from memobase_server.storage.mongo.database import PROJECTS, Document, MongoDatabase
from memobase_server.storage.mongo.query_audit import allow_scan


def _to_project(doc: Document) -> Project:
    return Project(
        project_id=doc["_id"],
        secret_hash=doc.get("secret_hash"),
        status=ProjectStatus(doc.get("status", ProjectStatus.ACTIVE.value)),
        profile_config=doc.get("profile_config"),
        created_at=doc["created_at"],
    )


class MongoProjectRepo:
    def __init__(self, db: MongoDatabase) -> None:
        self._projects = db.collection(PROJECTS)

    async def get(self, project_id: str) -> Project | None:
        doc = await self._projects.find_one({"_id": project_id})
        return _to_project(doc) if doc else None

    async def insert(self, project: Project) -> None:
        try:
            await self._projects.insert_one(
                {
                    "_id": project.project_id,
                    "secret_hash": project.secret_hash,
                    "status": project.status.value,
                    "profile_config": project.profile_config,
                    "created_at": project.created_at,
                }
            )
        except DuplicateKeyError:
            raise AlreadyExists(f"Project {project.project_id} already exists") from None

    async def set_secret(
        self, project_id: str, secret_hash: str | None, status: ProjectStatus
    ) -> bool:
        result = await self._projects.update_one(
            {"_id": project_id}, {"$set": {"secret_hash": secret_hash, "status": status.value}}
        )
        return result.matched_count == 1

    async def set_profile_config(self, project_id: str, profile_config: str | None) -> bool:
        """Replaces the project's profile config (None: server defaults); False when the
        project does not exist."""
        result = await self._projects.update_one(
            {"_id": project_id}, {"$set": {"profile_config": profile_config}}
        )
        return result.matched_count == 1

    async def list(self) -> list[Project]:
        with allow_scan("projects listing"):
            docs = await self._projects.find({}).sort([("_id", ASCENDING)]).to_list()
        return [_to_project(doc) for doc in docs]
