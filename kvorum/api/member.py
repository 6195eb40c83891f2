"""What the gRPC servicers need from the member: one Protocol, in our own types.

The servicers are thin adapters (validate -> call the member -> map errors -> fill the header);
everything that touches raft, the store or the cluster's membership sits behind `Member`.
Requests and responses of the KV calls are the mvcc dataclasses; the rest are the small frozen
records below, so that neither side depends on protobuf.

Calls that go through raft (writes, linearizable reads, membership, alarms) are coroutines.
`header()` is synchronous and cheap: it is read for every response.
"""

from __future__ import annotations

import enum
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Protocol

from kvorum.auth import AuthInfo, AuthStore, Permission
from kvorum.lease import TimeToLive
from kvorum.mvcc import (
    DeleteRangeRequest,
    DeleteRangeResponse,
    PutRequest,
    PutResponse,
    RangeRequest,
    RangeResponse,
    TxnRequest,
    TxnResponse,
)

__all__ = [
    "AlarmAction",
    "AlarmMember",
    "AlarmType",
    "AuthMember",
    "HashKV",
    "Header",
    "LeaseMember",
    "Member",
    "MemberInfo",
    "SnapshotReader",
    "Status",
]


@dataclass(frozen=True, slots=True)
class Header:
    """The identity and position of the answering member (etcd's ResponseHeader)."""

    cluster_id: int
    member_id: int
    revision: int
    raft_term: int


@dataclass(frozen=True, slots=True)
class MemberInfo:
    """One cluster member as MemberList shows it; a member not yet started has no name."""

    id: int
    name: str
    peer_urls: tuple[str, ...]
    client_urls: tuple[str, ...] = ()
    is_learner: bool = False


@dataclass(frozen=True, slots=True)
class Status:
    """Maintenance.Status of this member; sizes in bytes, ids as raft knows them."""

    version: str
    db_size_bytes: int
    db_size_in_use_bytes: int
    leader: int  # 0 while there is no leader
    raft_index: int
    raft_term: int
    raft_applied_index: int
    errors: tuple[str, ...] = ()
    is_learner: bool = False


@dataclass(frozen=True, slots=True)
class HashKV:
    """etcd's HashKV: crc32 of the history up to `hash_revision`, and the compact revision.

    `current_revision` is the store's revision when the hash was taken (etcd's header).
    """

    hash: int
    compact_revision: int
    hash_revision: int
    current_revision: int


class AlarmAction(enum.IntEnum):
    """etcdserverpb.AlarmRequest.AlarmAction."""

    GET = 0
    ACTIVATE = 1
    DEACTIVATE = 2


class AlarmType(enum.IntEnum):
    """etcdserverpb.AlarmType."""

    NONE = 0
    NOSPACE = 1
    CORRUPT = 2


@dataclass(frozen=True, slots=True)
class AlarmMember:
    """One raised alarm: which member, which kind."""

    member_id: int
    alarm: AlarmType


class SnapshotReader(Protocol):
    """A point-in-time copy of the backend, read as chunks; `aclose` releases it."""

    @property
    def size_bytes(self) -> int: ...

    def chunks(self) -> AsyncIterator[bytes]: ...

    async def aclose(self) -> None: ...


class Member(Protocol):
    """Everything the KV, Cluster and Maintenance servicers ask of the member.

    Errors are raised as the classes of `kvorum.mvcc.errors`, `kvorum.server.errors` or
    `kvorum.api.errors`; the servicers map them to etcd's status through `api.errors`.
    """

    def header(self) -> Header:
        """Cluster id, member id, current store revision and raft term, read now."""
        ...

    # --- KV --------------------------------------------------------------------------------

    async def range(self, req: RangeRequest, serializable: bool) -> RangeResponse:
        """A read: after a ReadIndex round unless `serializable`."""
        ...

    async def put(self, req: PutRequest) -> PutResponse: ...

    async def delete_range(self, req: DeleteRangeRequest) -> DeleteRangeResponse: ...

    async def txn(self, req: TxnRequest, serializable: bool) -> TxnResponse:
        """`serializable` is only ever true for a txn whose every op is a serializable read."""
        ...

    async def compact(self, revision: int, physical: bool) -> int:
        """Compact history at `revision`; returns the store revision for the header.

        With `physical`, returns only once the compaction has been carried out on disk.
        """
        ...

    # --- Cluster ---------------------------------------------------------------------------

    async def member_list(self, linearizable: bool) -> tuple[MemberInfo, ...]: ...

    async def member_add(
        self, peer_urls: tuple[str, ...], is_learner: bool
    ) -> tuple[MemberInfo, tuple[MemberInfo, ...]]:
        """Returns the added member and the member list after the change."""
        ...

    async def member_remove(self, member_id: int) -> tuple[MemberInfo, ...]: ...

    async def member_update(
        self, member_id: int, peer_urls: tuple[str, ...]
    ) -> tuple[MemberInfo, ...]: ...

    async def member_promote(self, member_id: int) -> tuple[MemberInfo, ...]: ...

    # --- Maintenance -----------------------------------------------------------------------

    async def status(self) -> Status: ...

    async def hash(self) -> int:
        """crc32 of the whole backend (etcd's Hash)."""
        ...

    async def hash_kv(self, revision: int) -> HashKV: ...

    async def alarm(
        self, action: AlarmAction, member_id: int, alarm: AlarmType
    ) -> tuple[AlarmMember, ...]:
        """Get, raise or clear alarms; returns the alarms the action concerns (etcd's)."""
        ...

    async def defragment(self) -> None: ...

    async def snapshot(self) -> SnapshotReader: ...

    async def move_leader(self, target_id: int) -> None: ...


class LeaseMember(Protocol):
    """What the Lease servicer asks of the member (a separate Protocol: not every `Member`
    double serves leases).

    Grant and revoke go through raft; renew and time-to-live need the lessor's expiry, which
    only the leader keeps (a follower raises `kvorum.lease.NotPrimaryError`, etcd's "not
    leader"). Lease errors are the classes of `kvorum.lease`.
    """

    def header(self) -> Header: ...

    async def lease_grant(self, lease_id: int, ttl_s: int) -> tuple[int, int, int]:
        """Grant (id 0: the member picks one); returns (revision, lease id, granted TTL)."""
        ...

    async def lease_revoke(self, lease_id: int) -> int:
        """Revoke and delete the lease's keys in one revision; returns the store revision."""
        ...

    async def lease_renew(self, lease_id: int) -> int:
        """Keep-alive on the leader; returns the TTL the lease now has."""
        ...

    async def lease_time_to_live(self, lease_id: int, keys: bool) -> TimeToLive: ...

    async def lease_leases(self) -> tuple[int, ...]: ...


class AuthMember(Protocol):
    """What the Auth servicer asks of the member (etcd's Auth service; a separate Protocol).

    `who` is the user the request's token names (None: no token given); management calls
    need the root role while auth is enabled, checked where the request is applied (writes)
    or served (reads), with etcd's errors (`kvorum.auth.errors`).
    """

    def header(self) -> Header: ...

    @property
    def auth(self) -> AuthStore | None:
        """The auth state the API layer checks calls against (None: auth is not served)."""
        ...

    async def auth_info(self, token: str | None) -> AuthInfo | None:
        """Who a token names (None for no token), once this member has applied the entry
        that issued it; a token that names nobody raises `InvalidAuthTokenError`."""
        ...

    async def auth_enable(self, who: AuthInfo | None) -> None: ...

    async def auth_disable(self, who: AuthInfo | None) -> None: ...

    async def authenticate(self, name: str, password: str) -> str:
        """Check the password and issue a token for `name`."""
        ...

    async def user_add(
        self, who: AuthInfo | None, name: str, password: str, no_password: bool
    ) -> None: ...

    async def user_get(self, who: AuthInfo | None, name: str) -> tuple[str, ...]:
        """The user's roles."""
        ...

    async def user_list(self, who: AuthInfo | None) -> tuple[str, ...]: ...

    async def user_delete(self, who: AuthInfo | None, name: str) -> None: ...

    async def user_change_password(
        self, who: AuthInfo | None, name: str, password: str
    ) -> None: ...

    async def user_grant_role(self, who: AuthInfo | None, user: str, role: str) -> None: ...

    async def user_revoke_role(self, who: AuthInfo | None, name: str, role: str) -> None: ...

    async def role_add(self, who: AuthInfo | None, name: str) -> None: ...

    async def role_get(self, who: AuthInfo | None, role: str) -> tuple[Permission, ...]: ...

    async def role_list(self, who: AuthInfo | None) -> tuple[str, ...]: ...

    async def role_delete(self, who: AuthInfo | None, role: str) -> None: ...

    async def role_grant_permission(
        self, who: AuthInfo | None, name: str, permission: Permission
    ) -> None: ...

    async def role_revoke_permission(
        self, who: AuthInfo | None, role: str, key: bytes, range_end: bytes
    ) -> None: ...
