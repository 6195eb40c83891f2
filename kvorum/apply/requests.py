"""The requests the apply layer executes besides mvcc's own, and their responses.

mvcc's requests and responses (`kvorum.mvcc.types`) are used as they are; these cover the other
writes that go through raft: compaction, leases, alarms, member attributes, cluster version.
`revision` in a response is the store revision etcd puts in its header.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from kvorum.auth.requests import AsUser, AuthRequest, AuthResponse
from kvorum.membership.types import AlarmAction, AlarmMember, AlarmType, Member
from kvorum.mvcc.types import (
    DeleteRangeRequest,
    DeleteRangeResponse,
    Event,
    PutRequest,
    PutResponse,
    TxnRequest,
    TxnResponse,
)
from kvorum.raft.types import ConfState

# --- requests ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class CompactRequest:
    revision: int
    physical: bool = False


@dataclass(frozen=True, slots=True)
class LeaseGrantRequest:
    """`lease_id` is already chosen by the proposer (never 0), so every member grants the same."""

    lease_id: int
    ttl_s: int


@dataclass(frozen=True, slots=True)
class LeaseRevokeRequest:
    lease_id: int


@dataclass(frozen=True, slots=True)
class AlarmRequest:
    action: AlarmAction
    member_id: int
    alarm: AlarmType


@dataclass(frozen=True, slots=True)
class MemberAttrSetRequest:
    """A member publishes its name and client URLs once it has started (etcd's publish)."""

    member_id: int
    name: str
    client_urls: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class ClusterVersionSetRequest:
    version: str


Request = (
    PutRequest
    | DeleteRangeRequest
    | TxnRequest
    | CompactRequest
    | LeaseGrantRequest
    | LeaseRevokeRequest
    | AlarmRequest
    | MemberAttrSetRequest
    | ClusterVersionSetRequest
    | AuthRequest
    | AsUser[Any]
)

# --- responses -----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class CompactResponse:
    revision: int


@dataclass(frozen=True, slots=True)
class LeaseGrantResponse:
    revision: int
    lease_id: int
    ttl_s: int


@dataclass(frozen=True, slots=True)
class LeaseRevokeResponse:
    """`events` are the deletions of the lease's keys, all at one revision (for the watch hub)."""

    revision: int
    events: tuple[Event, ...] = ()


@dataclass(frozen=True, slots=True)
class AlarmResponse:
    revision: int
    alarms: tuple[AlarmMember, ...]


@dataclass(frozen=True, slots=True)
class MembersResponse:
    """The member list after a conf change or an attribute update.

    `conf_state` is the raft configuration after a conf change (None for an attribute update,
    or when the raft shell applies conf changes itself).
    """

    members: tuple[Member, ...]
    conf_state: ConfState | None = None


@dataclass(frozen=True, slots=True)
class ClusterVersionSetResponse:
    version: str


Response = (
    PutResponse
    | DeleteRangeResponse
    | TxnResponse
    | CompactResponse
    | LeaseGrantResponse
    | LeaseRevokeResponse
    | AlarmResponse
    | MembersResponse
    | ClusterVersionSetResponse
    | AuthResponse
)
