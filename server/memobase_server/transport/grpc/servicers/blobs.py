"""BlobService: proto <-> domain, nothing else."""

from __future__ import annotations

from typing import Any

from grpc.aio import ServicerContext

from memobase_server.domain.models import BufferStatus
from memobase_server.gen.memobase.v1 import blob_pb2, blob_pb2_grpc, common_pb2
from memobase_server.services.blobs import Blobs
from memobase_server.services.flushes import FlushResult, FlushService
from memobase_server.services.usage import UsageRecorder
from memobase_server.transport.grpc import convert
from memobase_server.transport.grpc.context import project_id

Context = ServicerContext[Any, Any]


def _chat_result(result: FlushResult) -> common_pb2.ChatModalResponse:
    return common_pb2.ChatModalResponse(
        event_id=result.event_id,
        add_profiles=result.added,
        update_profiles=result.updated,
        delete_profiles=result.deleted,
    )


class BlobServicer(blob_pb2_grpc.BlobServiceServicer):
    def __init__(self, blobs: Blobs, flushes: FlushService, usage: UsageRecorder) -> None:
        self._blobs = blobs
        self._flushes = flushes
        self._usage = usage

    async def InsertBlob(
        self, request: blob_pb2.InsertBlobRequest, context: Context
    ) -> blob_pb2.InsertBlobResponse:
        succeeded = False
        try:
            blob, fresh = await self._blobs.insert(
                project_id(),
                request.user_id,
                convert.blob_type(request.blob.blob_type),
                convert.struct_or_none(request.blob, "blob_data"),
                convert.struct_or_none(request.blob, "fields"),
                convert.optional_value(request, "idempotency_key"),
            )
            results = (
                await self._flushes.after_insert(blob, wait=request.wait_process) if fresh else []
            )
            succeeded = True
            return blob_pb2.InsertBlobResponse(
                id=blob.blob_id, chat_results=[_chat_result(r) for r in results]
            )
        finally:
            self._usage.count_insert(project_id(), succeeded)

    async def GetBlob(
        self, request: blob_pb2.GetBlobRequest, context: Context
    ) -> blob_pb2.GetBlobResponse:
        blob = await self._blobs.get(project_id(), request.user_id, request.blob_id)
        response = blob_pb2.GetBlobResponse(blob_type=convert.blob_type_to_proto(blob.blob_type))
        convert.fill_struct(response.blob_data, blob.blob_data)
        if blob.fields is not None:
            convert.fill_struct(response.fields, blob.fields)
        convert.fill_timestamp(response.created_at, blob.created_at)
        convert.fill_timestamp(response.updated_at, blob.updated_at)
        return response

    async def DeleteBlob(
        self, request: blob_pb2.DeleteBlobRequest, context: Context
    ) -> blob_pb2.DeleteBlobResponse:
        await self._blobs.delete(project_id(), request.user_id, request.blob_id)
        return blob_pb2.DeleteBlobResponse()

    async def ListBlobs(
        self, request: blob_pb2.ListBlobsRequest, context: Context
    ) -> blob_pb2.ListBlobsResponse:
        ids = await self._blobs.list_ids(
            project_id(),
            request.user_id,
            convert.blob_type(request.blob_type),
            request.page,
            convert.optional_value(request, "page_size"),
        )
        return blob_pb2.ListBlobsResponse(ids=ids)

    async def FlushBuffer(
        self, request: blob_pb2.FlushBufferRequest, context: Context
    ) -> blob_pb2.FlushBufferResponse:
        results = await self._flushes.request(
            project_id(),
            request.user_id,
            convert.blob_type(request.buffer_type, "buffer_type"),
            wait=request.wait_process,
        )
        return blob_pb2.FlushBufferResponse(chat_results=[_chat_result(r) for r in results])

    async def GetBufferCapacity(
        self, request: blob_pb2.GetBufferCapacityRequest, context: Context
    ) -> blob_pb2.GetBufferCapacityResponse:
        status = (
            convert.buffer_status(request.status)
            if request.HasField("status")
            else BufferStatus.PROCESSING
        )
        ids = await self._blobs.buffer_entry_ids(
            project_id(),
            request.user_id,
            convert.blob_type(request.buffer_type, "buffer_type"),
            status,
        )
        return blob_pb2.GetBufferCapacityResponse(ids=ids)
