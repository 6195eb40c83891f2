"""``AsyncClient``: etcd v3's KV, Watch, Lease, Cluster, Maintenance, Lock and Election APIs
for asyncio, with failover across endpoints (see ``transport`` for the retry rules).

Every unary call has a deadline (``timeout_s`` of the client unless given per call) that covers
all its retries. Reads are repeated on another endpoint after ``UNAVAILABLE``; writes only when
nothing was sent. A txn counts as a read when all its ops are reads.
"""

from __future__ import annotations

import math
from collections.abc import Awaitable, Sequence
from typing import IO, Any

import grpc.aio

from kvorum.api.pb.etcdserverpb import rpc_pb2
from kvorum.api.pb.v3electionpb import v3election_pb2
from kvorum.api.pb.v3lockpb import v3lock_pb2
from kvorum.client import txn as _txn
from kvorum.client.concurrency import Election, Lock
from kvorum.client.errors import EtcdError, Unavailable, error_from_rpc
from kvorum.client.lease import KeepAlive
from kvorum.client.transport import ClientConfig, Pool
from kvorum.client.types import (
    Alarm,
    DeleteResult,
    GetResult,
    HashKVResult,
    Header,
    KeyValue,
    LeaseGrant,
    LeaseTimeToLive,
    Member,
    PutResult,
    Status,
    TxnResult,
)
from kvorum.client.watch import RECONNECT_TIMEOUT_S, Watch

__all__ = ["AsyncClient"]

SNAPSHOT_CHUNKS_MAX = 1 << 20


def _is_read_only(request: rpc_pb2.TxnRequest) -> bool:
    ops = [*request.success, *request.failure]
    return all(
        op.WhichOneof("request") == "request_range"
        or (op.WhichOneof("request") == "request_txn" and _is_read_only(op.request_txn))
        for op in ops
    )


class AsyncClient:
    """An asyncio client for etcd v3 (and kvorum). Use ``async with`` or call ``close()``.

    ``endpoints`` are client URLs (``http://127.0.0.1:2379``) or ``host:port``; ``https://``
    or ``ca_cert`` switch to TLS (``cert``/``key`` for client certificates, all PEM bytes);
    ``user``/``password`` authenticate and send the token with every call.
    """

    # Compare targets and ops for txns, reachable from the client as in the docs' examples.
    value = staticmethod(_txn.value)
    version = staticmethod(_txn.version)
    create_revision = staticmethod(_txn.create_revision)
    mod_revision = staticmethod(_txn.mod_revision)
    lease = staticmethod(_txn.lease)
    get_op = staticmethod(_txn.get_op)
    put_op = staticmethod(_txn.put_op)
    delete_op = staticmethod(_txn.delete_op)
    txn_op = staticmethod(_txn.txn_op)

    def __init__(
        self,
        endpoints: Sequence[str],
        *,
        timeout_s: float = 5.0,
        connect_timeout_s: float = 1.0,
        keepalive_time_s: float = 30.0,
        keepalive_timeout_s: float = 10.0,
        ca_cert: bytes | None = None,
        cert: bytes | None = None,
        key: bytes | None = None,
        user: str | None = None,
        password: str | None = None,
    ) -> None:
        if isinstance(endpoints, str):
            endpoints = [endpoints]
        self.config = ClientConfig(
            endpoints=tuple(endpoints),
            timeout_s=timeout_s,
            connect_timeout_s=connect_timeout_s,
            keepalive_time_s=keepalive_time_s,
            keepalive_timeout_s=keepalive_timeout_s,
            ca_cert=ca_cert,
            cert=cert,
            key=key,
            user=user,
            password=password,
        )
        self._pool = Pool(self.config)

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    async def close(self) -> None:
        await self._pool.close()

    @property
    def current_endpoint(self) -> str:
        """The URL calls go to now (it changes on failover)."""
        return self._pool.endpoints[self._pool.current].url

    async def _call(
        self,
        service: str,
        method: str,
        request: Any,
        *,
        idempotent: bool,
        timeout_s: float | None = None,
        endpoint: int | None = None,
    ) -> Any:
        return await self._pool.unary(
            service, method, request, idempotent=idempotent, timeout_s=timeout_s, endpoint=endpoint
        )

    # -- KV -------------------------------------------------------------------------------

    async def get(
        self,
        key: str | bytes,
        *,
        prefix: bool = False,
        range_end: str | bytes | None = None,
        revision: int = 0,
        limit: int = 0,
        keys_only: bool = False,
        count_only: bool = False,
        serializable: bool = False,
        sort_order: str = "none",
        sort_target: str = "key",
        min_mod_revision: int = 0,
        max_mod_revision: int = 0,
        min_create_revision: int = 0,
        max_create_revision: int = 0,
        timeout_s: float | None = None,
    ) -> GetResult:
        request = _txn.range_request(
            key,
            prefix=prefix,
            range_end=range_end,
            revision=revision,
            limit=limit,
            keys_only=keys_only,
            count_only=count_only,
            serializable=serializable,
            sort_order=sort_order,
            sort_target=sort_target,
            min_mod_revision=min_mod_revision,
            max_mod_revision=max_mod_revision,
            min_create_revision=min_create_revision,
            max_create_revision=max_create_revision,
        )
        response = await self._call("KV", "Range", request, idempotent=True, timeout_s=timeout_s)
        return GetResult.from_pb(response)

    async def put(
        self,
        key: str | bytes,
        value: str | bytes = b"",
        *,
        lease: int = 0,
        prev_kv: bool = False,
        ignore_value: bool = False,
        ignore_lease: bool = False,
        timeout_s: float | None = None,
    ) -> PutResult:
        request = _txn.put_request(
            key,
            value,
            lease=lease,
            prev_kv=prev_kv,
            ignore_value=ignore_value,
            ignore_lease=ignore_lease,
        )
        response = await self._call("KV", "Put", request, idempotent=False, timeout_s=timeout_s)
        return PutResult.from_pb(response)

    async def delete(
        self,
        key: str | bytes,
        *,
        prefix: bool = False,
        range_end: str | bytes | None = None,
        prev_kv: bool = False,
        timeout_s: float | None = None,
    ) -> DeleteResult:
        request = _txn.delete_request(key, prefix=prefix, range_end=range_end, prev_kv=prev_kv)
        response = await self._call(
            "KV", "DeleteRange", request, idempotent=False, timeout_s=timeout_s
        )
        return DeleteResult.from_pb(response)

    async def compact(
        self, revision: int, *, physical: bool = False, timeout_s: float | None = None
    ) -> Header:
        request = rpc_pb2.CompactionRequest(revision=revision, physical=physical)
        response = await self._call("KV", "Compact", request, idempotent=False, timeout_s=timeout_s)
        return Header.from_pb(response.header)

    def txn(self, *, timeout_s: float | None = None) -> _txn.Txn[Awaitable[TxnResult]]:
        """A transaction builder: ``await c.txn().if_(...).then(...).else_(...).commit()``."""

        return _txn.Txn(lambda request: self.submit_txn(request, timeout_s=timeout_s))

    async def submit_txn(
        self, request: rpc_pb2.TxnRequest, *, timeout_s: float | None = None
    ) -> TxnResult:
        """Run a prepared TxnRequest (``txn()`` builds one); repeated on failover only when
        every op in it is a read."""
        response = await self._call(
            "KV", "Txn", request, idempotent=_is_read_only(request), timeout_s=timeout_s
        )
        return TxnResult.from_pb(response)

    # -- Watch ----------------------------------------------------------------------------

    def watch(
        self,
        key: str | bytes,
        *,
        prefix: bool = False,
        range_end: str | bytes | None = None,
        start_revision: int = 0,
        prev_kv: bool = False,
        progress_notify: bool = False,
        reconnect_timeout_s: float = RECONNECT_TIMEOUT_S,
    ) -> Watch:
        """``async for event in c.watch("k")``; resumes across failover (see ``watch``)."""
        k = _txn.key_bytes(key)
        request = rpc_pb2.WatchCreateRequest(
            key=k,
            range_end=_txn.range_request(k, prefix=prefix, range_end=range_end).range_end,
            start_revision=start_revision,
            prev_kv=prev_kv,
            progress_notify=progress_notify,
        )
        return Watch(self._pool, request, reconnect_timeout_s=reconnect_timeout_s)

    # -- Lease ----------------------------------------------------------------------------

    async def grant(self, ttl_s: int, *, lease_id: int = 0) -> LeaseGrant:
        request = rpc_pb2.LeaseGrantRequest(TTL=ttl_s, ID=lease_id)
        response = await self._call("Lease", "LeaseGrant", request, idempotent=False)
        if response.error:
            raise EtcdError(response.error)
        return LeaseGrant.from_pb(response)

    async def revoke(self, lease_id: int) -> Header:
        request = rpc_pb2.LeaseRevokeRequest(ID=lease_id)
        response = await self._call("Lease", "LeaseRevoke", request, idempotent=False)
        return Header.from_pb(response.header)

    async def time_to_live(self, lease_id: int, *, keys: bool = False) -> LeaseTimeToLive:
        request = rpc_pb2.LeaseTimeToLiveRequest(ID=lease_id, keys=keys)
        response = await self._call("Lease", "LeaseTimeToLive", request, idempotent=True)
        return LeaseTimeToLive.from_pb(response)

    async def leases(self) -> tuple[int, ...]:
        response = await self._call(
            "Lease", "LeaseLeases", rpc_pb2.LeaseLeasesRequest(), idempotent=True
        )
        return tuple(lease.ID for lease in response.leases)

    def keep_alive(self, lease_id: int) -> KeepAlive:
        """``async with c.keep_alive(lease_id) as ka:`` refreshes the lease at ttl/3."""
        return KeepAlive(self._pool, lease_id)

    # -- Cluster --------------------------------------------------------------------------

    async def member_list(self) -> tuple[Member, ...]:
        response = await self._call(
            "Cluster", "MemberList", rpc_pb2.MemberListRequest(), idempotent=True
        )
        return tuple(Member.from_pb(m) for m in response.members)

    async def member_add(self, peer_urls: Sequence[str], *, is_learner: bool = False) -> Member:
        request = rpc_pb2.MemberAddRequest(peerURLs=list(peer_urls), isLearner=is_learner)
        response = await self._call("Cluster", "MemberAdd", request, idempotent=False)
        return Member.from_pb(response.member)

    async def member_remove(self, member_id: int) -> tuple[Member, ...]:
        request = rpc_pb2.MemberRemoveRequest(ID=member_id)
        response = await self._call("Cluster", "MemberRemove", request, idempotent=False)
        return tuple(Member.from_pb(m) for m in response.members)

    async def member_update(self, member_id: int, peer_urls: Sequence[str]) -> tuple[Member, ...]:
        request = rpc_pb2.MemberUpdateRequest(ID=member_id, peerURLs=list(peer_urls))
        response = await self._call("Cluster", "MemberUpdate", request, idempotent=False)
        return tuple(Member.from_pb(m) for m in response.members)

    async def member_promote(self, member_id: int) -> tuple[Member, ...]:
        request = rpc_pb2.MemberPromoteRequest(ID=member_id)
        response = await self._call("Cluster", "MemberPromote", request, idempotent=False)
        return tuple(Member.from_pb(m) for m in response.members)

    # -- Maintenance ----------------------------------------------------------------------

    def _endpoint_index(self, endpoint: str | None) -> int:
        if endpoint is None:
            return self._pool.current
        for i, ep in enumerate(self._pool.endpoints):
            if endpoint in (ep.url, ep.target):
                return i
        raise ValueError(f"{endpoint!r} is not one of this client's endpoints")

    async def status(self, endpoint: str | None = None) -> Status:
        """Status of one member (default: the current endpoint), without failover."""
        index = self._endpoint_index(endpoint)
        response = await self._call(
            "Maintenance", "Status", rpc_pb2.StatusRequest(), idempotent=True, endpoint=index
        )
        return Status.from_pb(self._pool.endpoints[index].url, response)

    async def hash_kv(self, revision: int = 0, *, endpoint: str | None = None) -> HashKVResult:
        index = self._endpoint_index(endpoint)
        request = rpc_pb2.HashKVRequest(revision=revision)
        response = await self._call(
            "Maintenance", "HashKV", request, idempotent=True, endpoint=index
        )
        return HashKVResult.from_pb(response)

    async def defragment(self, endpoint: str | None = None, *, timeout_s: float = 60.0) -> Header:
        index = self._endpoint_index(endpoint)
        response = await self._call(
            "Maintenance",
            "Defragment",
            rpc_pb2.DefragmentRequest(),
            idempotent=True,
            timeout_s=timeout_s,
            endpoint=index,
        )
        return Header.from_pb(response.header)

    async def alarms(self) -> tuple[Alarm, ...]:
        request = rpc_pb2.AlarmRequest(action=rpc_pb2.AlarmRequest.GET)
        response = await self._call("Maintenance", "Alarm", request, idempotent=True)
        return tuple(Alarm.from_pb(a) for a in response.alarms)

    async def alarm_disarm(self, member_id: int = 0, alarm: str = "NOSPACE") -> tuple[Alarm, ...]:
        request = rpc_pb2.AlarmRequest(
            action=rpc_pb2.AlarmRequest.DEACTIVATE,
            memberID=member_id,
            alarm=alarm,
        )
        response = await self._call("Maintenance", "Alarm", request, idempotent=True)
        return tuple(Alarm.from_pb(a) for a in response.alarms)

    async def snapshot(self, fileobj: IO[bytes], *, timeout_s: float = 300.0) -> int:
        """Stream the current endpoint's backend snapshot into ``fileobj``; the byte count."""
        index = self._pool.current
        if not await self._pool.ready(index, self.config.connect_timeout_s):
            raise Unavailable(f"cannot connect to {self._pool.endpoints[index].url}")
        md = await self._pool.metadata(index, self.config.timeout_s)
        stream = self._pool.stub(index, "Maintenance").Snapshot(
            rpc_pb2.SnapshotRequest(), timeout=timeout_s, metadata=md
        )
        size_bytes = 0
        chunks = 0
        try:
            async for chunk in stream:
                chunks += 1
                if chunks > SNAPSHOT_CHUNKS_MAX:
                    raise EtcdError("snapshot: too many chunks")
                fileobj.write(chunk.blob)
                size_bytes += len(chunk.blob)
        except grpc.aio.AioRpcError as exc:
            raise error_from_rpc(exc) from None
        return size_bytes

    async def move_leader(self, target_id: int) -> Header:
        """Hand leadership to member ``target_id``; sent to the current leader, as etcd needs."""
        for ep in self._pool.endpoints:
            try:
                st = await self.status(ep.url)
            except EtcdError:
                continue
            if st.leader and st.leader == st.header.member_id:
                index = self._endpoint_index(ep.url)
                request = rpc_pb2.MoveLeaderRequest(targetID=target_id)
                response = await self._call(
                    "Maintenance", "MoveLeader", request, idempotent=False, endpoint=index
                )
                return Header.from_pb(response.header)
        raise Unavailable("move_leader: no endpoint is the leader", "UNAVAILABLE")

    # -- Lock and Election ----------------------------------------------------------------

    def lock(self, name: str | bytes, *, ttl_s: int = 60, timeout_s: float = math.inf) -> Lock:
        """``async with c.lock("name"):`` holds etcd's distributed lock ``name``.

        The lock lives on a lease of ``ttl_s`` kept alive while held; if this process dies
        the lock is released when the lease expires. ``timeout_s`` bounds the wait.
        """
        return Lock(self, _txn.key_bytes(name), ttl_s=ttl_s, timeout_s=timeout_s)

    def election(self, name: str | bytes) -> Election:
        return Election(self, _txn.key_bytes(name))

    # Thin calls used by Lock/Election (kept here so that they share the retry rules).
    async def _lock(self, name: bytes, lease_id: int, timeout_s: float) -> bytes:
        request = v3lock_pb2.LockRequest(name=name, lease=lease_id)
        response = await self._call("Lock", "Lock", request, idempotent=False, timeout_s=timeout_s)
        return bytes(response.key)

    async def _unlock(self, key: bytes) -> None:
        request = v3lock_pb2.UnlockRequest(key=key)
        await self._call("Lock", "Unlock", request, idempotent=True)

    async def _campaign(
        self, name: bytes, lease_id: int, value: bytes, timeout_s: float
    ) -> v3election_pb2.LeaderKey:
        request = v3election_pb2.CampaignRequest(name=name, lease=lease_id, value=value)
        response = await self._call(
            "Election", "Campaign", request, idempotent=False, timeout_s=timeout_s
        )
        leader: v3election_pb2.LeaderKey = response.leader
        return leader

    async def _proclaim(self, leader: v3election_pb2.LeaderKey, value: bytes) -> None:
        request = v3election_pb2.ProclaimRequest(leader=leader, value=value)
        await self._call("Election", "Proclaim", request, idempotent=True)

    async def _leader(self, name: bytes) -> KeyValue:
        request = v3election_pb2.LeaderRequest(name=name)
        response = await self._call("Election", "Leader", request, idempotent=True)
        return KeyValue.from_pb(response.kv)

    async def _resign(self, leader: v3election_pb2.LeaderKey) -> None:
        request = v3election_pb2.ResignRequest(leader=leader)
        await self._call("Election", "Resign", request, idempotent=True)

    @property
    def pool(self) -> Pool:
        return self._pool
