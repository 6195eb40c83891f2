"""etcdserverpb.Lease over a `LeaseMember`: grant, revoke, keep-alive, time-to-live, list.

Answers follow etcd 3.4's v3rpc leaseServer, including its two quirks clients rely on: an
unknown lease is not an error for LeaseTimeToLive (TTL -1) nor for LeaseKeepAlive (TTL 0).
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import grpc

from kvorum.api import convert
from kvorum.api.errors import abort
from kvorum.api.member import LeaseMember
from kvorum.api.pb.etcdserverpb import rpc_pb2, rpc_pb2_grpc
from kvorum.lease import LeaseExpiredError, LeaseNotFoundError

__all__ = ["LeaseServicer"]

#: etcd's answer TTLs for a lease that does not exist (v3rpc, not an error status).
_TTL_UNKNOWN_LEASE = -1
_TTL_RENEW_UNKNOWN_LEASE = 0


class LeaseServicer(rpc_pb2_grpc.LeaseServicer):
    """The five Lease calls; everything that touches raft or the lessor is the member's."""

    def __init__(self, member: LeaseMember) -> None:
        self._member = member

    async def LeaseGrant(
        self, request: rpc_pb2.LeaseGrantRequest, context: grpc.aio.ServicerContext
    ) -> rpc_pb2.LeaseGrantResponse:
        try:
            revision, lease_id, ttl_s = await self._member.lease_grant(request.ID, request.TTL)
        except Exception as exc:
            await abort(context, exc, "LeaseGrant")
        return rpc_pb2.LeaseGrantResponse(
            header=convert.header(self._member.header(), revision), ID=lease_id, TTL=ttl_s
        )

    async def LeaseRevoke(
        self, request: rpc_pb2.LeaseRevokeRequest, context: grpc.aio.ServicerContext
    ) -> rpc_pb2.LeaseRevokeResponse:
        try:
            revision = await self._member.lease_revoke(request.ID)
        except Exception as exc:
            await abort(context, exc, "LeaseRevoke")
        return rpc_pb2.LeaseRevokeResponse(header=convert.header(self._member.header(), revision))

    async def LeaseKeepAlive(
        self,
        request_iterator: AsyncIterator[rpc_pb2.LeaseKeepAliveRequest],
        context: grpc.aio.ServicerContext,
    ) -> AsyncIterator[rpc_pb2.LeaseKeepAliveResponse]:
        # One answer per request, in order; the stream ends when the client closes its side.
        async for request in request_iterator:
            try:
                ttl_s = await self._member.lease_renew(request.ID)
            except (LeaseNotFoundError, LeaseExpiredError):
                ttl_s = _TTL_RENEW_UNKNOWN_LEASE
            except Exception as exc:
                await abort(context, exc, "LeaseKeepAlive")
            yield rpc_pb2.LeaseKeepAliveResponse(
                header=convert.header(self._member.header()), ID=request.ID, TTL=ttl_s
            )

    async def LeaseTimeToLive(
        self, request: rpc_pb2.LeaseTimeToLiveRequest, context: grpc.aio.ServicerContext
    ) -> rpc_pb2.LeaseTimeToLiveResponse:
        try:
            ttl = await self._member.lease_time_to_live(request.ID, request.keys)
        except LeaseNotFoundError:
            return rpc_pb2.LeaseTimeToLiveResponse(
                header=convert.header(self._member.header()),
                ID=request.ID,
                TTL=_TTL_UNKNOWN_LEASE,
            )
        except Exception as exc:
            await abort(context, exc, "LeaseTimeToLive")
        return rpc_pb2.LeaseTimeToLiveResponse(
            header=convert.header(self._member.header()),
            ID=ttl.lease_id,
            TTL=ttl.ttl_s,
            grantedTTL=ttl.granted_ttl_s,
            keys=list(ttl.keys),
        )

    async def LeaseLeases(
        self, request: rpc_pb2.LeaseLeasesRequest, context: grpc.aio.ServicerContext
    ) -> rpc_pb2.LeaseLeasesResponse:
        try:
            ids = await self._member.lease_leases()
        except Exception as exc:
            await abort(context, exc, "LeaseLeases")
        return rpc_pb2.LeaseLeasesResponse(
            header=convert.header(self._member.header()),
            leases=[rpc_pb2.LeaseStatus(ID=i) for i in ids],
        )
