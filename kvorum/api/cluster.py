"""etcdserverpb.Cluster over a `Member`: membership listing and changes."""

from __future__ import annotations

import grpc

from kvorum.api import convert
from kvorum.api.errors import abort
from kvorum.api.member import Member
from kvorum.api.pb.etcdserverpb import rpc_pb2, rpc_pb2_grpc

__all__ = ["ClusterServicer"]


class ClusterServicer(rpc_pb2_grpc.ClusterServicer):
    """MemberList/Add/Remove/Update/Promote; every response carries the member list after."""

    def __init__(self, member: Member) -> None:
        self._member = member

    def _header(self) -> rpc_pb2.ResponseHeader:
        # etcd's ClusterServer header names cluster, member and term, never a revision.
        return convert.cluster_header(self._member.header())

    async def MemberList(
        self, request: rpc_pb2.MemberListRequest, context: grpc.aio.ServicerContext
    ) -> rpc_pb2.MemberListResponse:
        try:
            members = await self._member.member_list(request.linearizable)
        except Exception as exc:
            await abort(context, exc, "MemberList")
        return rpc_pb2.MemberListResponse(header=self._header(), members=convert.members(members))

    async def MemberAdd(
        self, request: rpc_pb2.MemberAddRequest, context: grpc.aio.ServicerContext
    ) -> rpc_pb2.MemberAddResponse:
        try:
            added, members = await self._member.member_add(
                tuple(request.peerURLs), request.isLearner
            )
        except Exception as exc:
            await abort(context, exc, "MemberAdd")
        return rpc_pb2.MemberAddResponse(
            header=self._header(),
            member=convert.member(added),
            members=convert.members(members),
        )

    async def MemberRemove(
        self, request: rpc_pb2.MemberRemoveRequest, context: grpc.aio.ServicerContext
    ) -> rpc_pb2.MemberRemoveResponse:
        try:
            members = await self._member.member_remove(request.ID)
        except Exception as exc:
            await abort(context, exc, "MemberRemove")
        return rpc_pb2.MemberRemoveResponse(header=self._header(), members=convert.members(members))

    async def MemberUpdate(
        self, request: rpc_pb2.MemberUpdateRequest, context: grpc.aio.ServicerContext
    ) -> rpc_pb2.MemberUpdateResponse:
        try:
            members = await self._member.member_update(request.ID, tuple(request.peerURLs))
        except Exception as exc:
            await abort(context, exc, "MemberUpdate")
        return rpc_pb2.MemberUpdateResponse(header=self._header(), members=convert.members(members))

    async def MemberPromote(
        self, request: rpc_pb2.MemberPromoteRequest, context: grpc.aio.ServicerContext
    ) -> rpc_pb2.MemberPromoteResponse:
        try:
            members = await self._member.member_promote(request.ID)
        except Exception as exc:
            await abort(context, exc, "MemberPromote")
        return rpc_pb2.MemberPromoteResponse(
            header=self._header(), members=convert.members(members)
        )
