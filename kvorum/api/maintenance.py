"""etcdserverpb.Maintenance over a `Member`: status, hashes, alarms, defrag, snapshot.

Like etcd 3.4, Alarm, Defragment, MoveLeader and the Snapshot stream answer without a header
(etcdctl prints them so; `alarm list -w fields` even trips over it). The snapshot stream ends
with one extra message holding the sha256 of everything sent before it, which `etcdctl
snapshot save` keeps at the end of the file and `snapshot restore` checks.
"""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator

import grpc

from kvorum.api import convert
from kvorum.api.errors import abort
from kvorum.api.member import AlarmAction, AlarmType, Member
from kvorum.api.pb.etcdserverpb import rpc_pb2, rpc_pb2_grpc

__all__ = ["SNAPSHOT_CHUNK_BYTES_MAX", "MaintenanceServicer"]

#: etcd sends the snapshot in 32 KiB messages; larger backend chunks are split to that.
SNAPSHOT_CHUNK_BYTES_MAX = 32 * 1024


class MaintenanceServicer(rpc_pb2_grpc.MaintenanceServicer):
    """Alarm, Status, Defragment, Hash, HashKV, Snapshot and MoveLeader."""

    def __init__(self, member: Member) -> None:
        self._member = member

    async def Alarm(
        self, request: rpc_pb2.AlarmRequest, context: grpc.aio.ServicerContext
    ) -> rpc_pb2.AlarmResponse:
        try:
            alarms = await self._member.alarm(
                AlarmAction(request.action), request.memberID, AlarmType(request.alarm)
            )
        except Exception as exc:
            await abort(context, exc, "Alarm")
        return rpc_pb2.AlarmResponse(alarms=convert.alarm_members(alarms))

    async def Status(
        self, request: rpc_pb2.StatusRequest, context: grpc.aio.ServicerContext
    ) -> rpc_pb2.StatusResponse:
        try:
            status = await self._member.status()
        except Exception as exc:
            await abort(context, exc, "Status")
        return convert.status_response(status, convert.header(self._member.header()))

    async def Defragment(
        self, request: rpc_pb2.DefragmentRequest, context: grpc.aio.ServicerContext
    ) -> rpc_pb2.DefragmentResponse:
        try:
            await self._member.defragment()
        except Exception as exc:
            await abort(context, exc, "Defragment")
        return rpc_pb2.DefragmentResponse()

    async def Hash(
        self, request: rpc_pb2.HashRequest, context: grpc.aio.ServicerContext
    ) -> rpc_pb2.HashResponse:
        try:
            # etcd's header revision is the store's at the time of hashing: read it before.
            hdr = self._member.header()
            crc = await self._member.hash()
        except Exception as exc:
            await abort(context, exc, "Hash")
        return rpc_pb2.HashResponse(header=convert.header(hdr), hash=crc)

    async def HashKV(
        self, request: rpc_pb2.HashKVRequest, context: grpc.aio.ServicerContext
    ) -> rpc_pb2.HashKVResponse:
        try:
            result = await self._member.hash_kv(request.revision)
        except Exception as exc:
            await abort(context, exc, "HashKV")
        return rpc_pb2.HashKVResponse(
            # etcd's header revision is the store's current one, not the hashed one.
            header=convert.header(self._member.header(), result.current_revision),
            hash=result.hash,
            compact_revision=result.compact_revision,
            hash_revision=result.hash_revision,
        )

    async def Snapshot(
        self, request: rpc_pb2.SnapshotRequest, context: grpc.aio.ServicerContext
    ) -> AsyncIterator[rpc_pb2.SnapshotResponse]:
        try:
            reader = await self._member.snapshot()
        except Exception as exc:
            await abort(context, exc, "Snapshot")
        digest = hashlib.sha256()
        remaining = reader.size_bytes
        try:
            async for chunk in reader.chunks():
                view = memoryview(chunk)
                for start in range(0, len(view), SNAPSHOT_CHUNK_BYTES_MAX):
                    blob = bytes(view[start : start + SNAPSHOT_CHUNK_BYTES_MAX])
                    digest.update(blob)
                    remaining -= len(blob)
                    yield rpc_pb2.SnapshotResponse(remaining_bytes=max(remaining, 0), blob=blob)
        except Exception as exc:
            await abort(context, exc, "Snapshot")
        finally:
            await reader.aclose()
        yield rpc_pb2.SnapshotResponse(remaining_bytes=0, blob=digest.digest())

    async def MoveLeader(
        self, request: rpc_pb2.MoveLeaderRequest, context: grpc.aio.ServicerContext
    ) -> rpc_pb2.MoveLeaderResponse:
        try:
            await self._member.move_leader(request.targetID)
        except Exception as exc:
            await abort(context, exc, "MoveLeader")
        return rpc_pb2.MoveLeaderResponse()
