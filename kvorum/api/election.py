"""v3electionpb.Election over the member's KV, Lease and Watch, as etcd 3.4's v3election server.

An election `name` is the key prefix ``name/``; a candidate's key is ``name/<lease in hex>``
holding its proposal, attached to its lease. The leader is the candidate whose key has the
smallest create revision (clientv3/concurrency.Election): `Campaign` waits until every older
candidate is gone; a leader is named by its `LeaderKey` (key and create revision), which
`Proclaim` and `Resign` check with a compare on the key's create revision, so a candidate whose
key was deleted and created again is not taken for the old leader.

Errors reach the wire as etcd's do (see `kvorum.api.lock`): code UNKNOWN and etcd's text.
etcd's quirks kept: `Resign` of a leader that is no longer one succeeds and changes nothing;
`Proclaim` and `Resign` with lease 0 stand on a fresh 60-second lease (etcd opens a session for
them, which grants one; kvorum grants it only where it is used, for Proclaim's put); `Observe`
ends without an error when a read fails, as etcd's does.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import grpc

from kvorum.api import convert
from kvorum.api.errors import ApiError
from kvorum.api.lock import (
    LocalClient,
    abort_unknown,
    compare_created_at,
    contender_key,
    first_created,
    prefix_end,
    txn_range_kvs,
)
from kvorum.api.pb.etcdserverpb import rpc_pb2
from kvorum.api.pb.v3electionpb import v3election_pb2, v3election_pb2_grpc
from kvorum.mvcc import EventType, KeyValue
from kvorum.watch import CreateRequest

__all__ = [
    "ElectionNoLeaderError",
    "ElectionNotLeaderError",
    "ElectionServicer",
    "MissingLeaderKeyError",
]


class ElectionNotLeaderError(ApiError):
    """concurrency.ErrElectionNotLeader: the LeaderKey no longer names the leader's key."""

    grpc_code = "UNKNOWN"
    text = "election: not leader"


class ElectionNoLeaderError(ApiError):
    """concurrency.ErrElectionNoLeader: nobody campaigns in this election."""

    grpc_code = "UNKNOWN"
    text = "election: no leader"


class MissingLeaderKeyError(ApiError):
    """v3election.ErrMissingLeaderKey: Proclaim or Resign without a `leader`."""

    grpc_code = "UNKNOWN"
    text = '"leader" field must be provided'


class ElectionServicer(v3election_pb2_grpc.ElectionServicer):
    """Campaign, Proclaim, Leader, Observe and Resign, as etcd 3.4's v3election server."""

    def __init__(self, client: LocalClient) -> None:
        self._client = client

    async def Campaign(
        self, request: v3election_pb2.CampaignRequest, context: grpc.aio.ServicerContext
    ) -> v3election_pb2.CampaignResponse:
        client = self._client
        try:
            lease_id = await client.session_lease(request.lease)
            prefix = request.name + b"/"
            key = contender_key(prefix, lease_id)
            resp = await client.txn(
                rpc_pb2.TxnRequest(
                    compare=[compare_created_at(key, 0)],
                    success=[
                        rpc_pb2.RequestOp(
                            request_put=rpc_pb2.PutRequest(
                                key=key, value=request.value, lease=lease_id
                            )
                        )
                    ],
                    failure=[rpc_pb2.RequestOp(request_range=rpc_pb2.RangeRequest(key=key))],
                )
            )
            leader_revision = resp.revision
            if not resp.succeeded:
                # This lease already campaigns here: keep its place, update its proposal.
                mine = txn_range_kvs(resp, 0)[0]
                leader_revision = mine.create_revision
                if mine.value != request.value:
                    try:
                        await self._proclaim(key, leader_revision, lease_id, request.value)
                    except Exception:
                        await self._resign(key, leader_revision)
                        raise
        except Exception as exc:
            await abort_unknown(context, exc, "Campaign")
        try:
            await client.wait_deletes(prefix, leader_revision - 1)
        except asyncio.CancelledError:
            # The client gave up: withdraw the candidacy, as etcd does on a cancelled context.
            client.spawn_cleanup(
                self._resign(key, leader_revision), f"withdrawing candidacy {key!r}"
            )
            raise
        except Exception as exc:
            await abort_unknown(context, exc, "Campaign")
        # etcd answers with the header of the campaign's first write, not of the wait.
        return v3election_pb2.CampaignResponse(
            header=client.header(resp.revision),
            leader=v3election_pb2.LeaderKey(
                name=request.name, key=key, rev=leader_revision, lease=lease_id
            ),
        )

    async def Proclaim(
        self, request: v3election_pb2.ProclaimRequest, context: grpc.aio.ServicerContext
    ) -> v3election_pb2.ProclaimResponse:
        try:
            if not request.HasField("leader"):
                raise MissingLeaderKeyError
            leader = request.leader
            lease_id = await self._client.session_lease(leader.lease)
            revision = await self._proclaim(leader.key, leader.rev, lease_id, request.value)
        except Exception as exc:
            await abort_unknown(context, exc, "Proclaim")
        return v3election_pb2.ProclaimResponse(header=self._client.header(revision))

    async def Resign(
        self, request: v3election_pb2.ResignRequest, context: grpc.aio.ServicerContext
    ) -> v3election_pb2.ResignResponse:
        try:
            if not request.HasField("leader"):
                raise MissingLeaderKeyError
            revision = await self._resign(request.leader.key, request.leader.rev)
        except Exception as exc:
            await abort_unknown(context, exc, "Resign")
        return v3election_pb2.ResignResponse(header=self._client.header(revision))

    async def Leader(
        self, request: v3election_pb2.LeaderRequest, context: grpc.aio.ServicerContext
    ) -> v3election_pb2.LeaderResponse:
        try:
            found = await self._client.range(first_created(request.name + b"/"))
            if not found.kvs:
                raise ElectionNoLeaderError
        except Exception as exc:
            await abort_unknown(context, exc, "Leader")
        return v3election_pb2.LeaderResponse(
            header=self._client.header(found.revision), kv=convert.kv(found.kvs[0])
        )

    async def Observe(
        self, request: v3election_pb2.LeaderRequest, context: grpc.aio.ServicerContext
    ) -> AsyncIterator[v3election_pb2.LeaderResponse]:
        """The current leader's key-value, then every change of it, until the client leaves.

        clientv3's Election.observe: read the oldest candidate (or wait for the first put
        under the prefix when there is none), send it, then follow that one key -- each put
        is sent -- until it is deleted, and start over. So every leader and every proclaimed
        value is seen, though not every intermediate candidate.
        """
        client = self._client
        prefix = request.name + b"/"
        while True:
            try:
                found = await client.range(first_created(prefix))
            except Exception:
                return  # etcd's observe closes the stream, without an error, on a failed read
            if found.kvs:
                leader, revision = found.kvs[0], found.revision
            else:
                first = await self._first_put(prefix, found.revision)
                if first is None:
                    continue  # the watch was compacted away: read again
                leader, revision = first, first.mod_revision
            yield v3election_pb2.LeaderResponse(
                header=client.header(revision), kv=convert.kv(leader)
            )
            async with client.watch(
                CreateRequest(key=leader.key, start_revision=revision + 1)
            ) as responses:
                async for response in responses:
                    if response.canceled:
                        break  # compacted: read again
                    deleted = False
                    for event in response.events:
                        if event.type == EventType.DELETE:
                            deleted = True
                            break
                        yield v3election_pb2.LeaderResponse(
                            header=client.header(response.revision), kv=convert.kv(event.kv)
                        )
                    if deleted:
                        break

    async def _first_put(self, prefix: bytes, revision: int) -> KeyValue | None:
        """The first key put under `prefix` from `revision` on (None: compacted first)."""
        watched = CreateRequest(key=prefix, range_end=prefix_end(prefix), start_revision=revision)
        async with self._client.watch(watched) as responses:
            async for response in responses:
                if response.canceled:
                    return None
                for event in response.events:
                    if event.type == EventType.PUT:
                        return event.kv
        raise AssertionError("a hub watcher's responses never end")

    async def _proclaim(self, key: bytes, revision: int, lease_id: int, value: bytes) -> int:
        """Put `value` on the leader's key if it is still the one created at `revision`."""
        resp = await self._client.txn(
            rpc_pb2.TxnRequest(
                compare=[compare_created_at(key, revision)],
                success=[
                    rpc_pb2.RequestOp(
                        request_put=rpc_pb2.PutRequest(key=key, value=value, lease=lease_id)
                    )
                ],
            )
        )
        if not resp.succeeded:
            raise ElectionNotLeaderError(f"{key!r} not created at {revision}")
        return resp.revision

    async def _resign(self, key: bytes, revision: int) -> int:
        """Delete the leader's key if it is still the one created at `revision`."""
        resp = await self._client.txn(
            rpc_pb2.TxnRequest(
                compare=[compare_created_at(key, revision)],
                success=[
                    rpc_pb2.RequestOp(request_delete_range=rpc_pb2.DeleteRangeRequest(key=key))
                ],
            )
        )
        return resp.revision
