"""Typed results of the client: frozen slotted dataclasses built from etcd's responses.

Each ``from_pb`` reads one protobuf message; nothing here does I/O. Keys and values stay
``bytes`` (etcd keys are byte strings); ids and revisions are ``int``.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

from kvorum.api.pb.etcdserverpb import rpc_pb2
from kvorum.api.pb.mvccpb import kv_pb2

__all__ = [
    "Alarm",
    "DeleteResult",
    "Event",
    "EventType",
    "GetResult",
    "HashKVResult",
    "Header",
    "KeyValue",
    "LeaseGrant",
    "LeaseTimeToLive",
    "Member",
    "PutResult",
    "Status",
    "TxnResult",
]


@dataclass(frozen=True, slots=True)
class Header:
    cluster_id: int
    member_id: int
    revision: int
    raft_term: int

    @classmethod
    def from_pb(cls, h: rpc_pb2.ResponseHeader) -> Header:
        return cls(h.cluster_id, h.member_id, h.revision, h.raft_term)


@dataclass(frozen=True, slots=True)
class KeyValue:
    key: bytes
    value: bytes
    create_revision: int
    mod_revision: int
    version: int
    lease: int

    @classmethod
    def from_pb(cls, kv: kv_pb2.KeyValue) -> KeyValue:
        return cls(kv.key, kv.value, kv.create_revision, kv.mod_revision, kv.version, kv.lease)


def _opt_kv(has: bool, kv: kv_pb2.KeyValue) -> KeyValue | None:
    return KeyValue.from_pb(kv) if has else None


@dataclass(frozen=True, slots=True)
class GetResult:
    kvs: tuple[KeyValue, ...]
    count: int
    more: bool
    header: Header

    @classmethod
    def from_pb(cls, r: rpc_pb2.RangeResponse) -> GetResult:
        kvs = tuple(KeyValue.from_pb(kv) for kv in r.kvs)
        return cls(kvs, r.count, r.more, Header.from_pb(r.header))

    @property
    def value(self) -> bytes | None:
        """The first key's value, or None when nothing matched (the common single-key case)."""
        return self.kvs[0].value if self.kvs else None


@dataclass(frozen=True, slots=True)
class PutResult:
    header: Header
    prev_kv: KeyValue | None

    @classmethod
    def from_pb(cls, r: rpc_pb2.PutResponse) -> PutResult:
        return cls(Header.from_pb(r.header), _opt_kv(r.HasField("prev_kv"), r.prev_kv))


@dataclass(frozen=True, slots=True)
class DeleteResult:
    deleted: int
    prev_kvs: tuple[KeyValue, ...]
    header: Header

    @classmethod
    def from_pb(cls, r: rpc_pb2.DeleteRangeResponse) -> DeleteResult:
        prev = tuple(KeyValue.from_pb(kv) for kv in r.prev_kvs)
        return cls(r.deleted, prev, Header.from_pb(r.header))


@dataclass(frozen=True, slots=True)
class TxnResult:
    succeeded: bool
    responses: tuple[GetResult | PutResult | DeleteResult | TxnResult, ...]
    header: Header

    @classmethod
    def from_pb(cls, r: rpc_pb2.TxnResponse) -> TxnResult:
        return cls(
            r.succeeded, tuple(_op_result(op) for op in r.responses), Header.from_pb(r.header)
        )


def _op_result(op: rpc_pb2.ResponseOp) -> GetResult | PutResult | DeleteResult | TxnResult:
    which = op.WhichOneof("response")
    if which == "response_range":
        return GetResult.from_pb(op.response_range)
    if which == "response_put":
        return PutResult.from_pb(op.response_put)
    if which == "response_delete_range":
        return DeleteResult.from_pb(op.response_delete_range)
    if which == "response_txn":
        return TxnResult.from_pb(op.response_txn)
    raise ValueError(f"empty ResponseOp in txn response: {op!r}")


class EventType(Enum):
    PUT = "put"
    DELETE = "delete"


@dataclass(frozen=True, slots=True)
class Event:
    """One watch event; ``revision`` is the revision of the change (the kv's mod_revision)."""

    type: EventType
    kv: KeyValue
    prev_kv: KeyValue | None

    @property
    def revision(self) -> int:
        return self.kv.mod_revision

    @classmethod
    def from_pb(cls, e: kv_pb2.Event) -> Event:
        kind = EventType.DELETE if e.type == kv_pb2.Event.DELETE else EventType.PUT
        return cls(kind, KeyValue.from_pb(e.kv), _opt_kv(e.HasField("prev_kv"), e.prev_kv))


@dataclass(frozen=True, slots=True)
class LeaseGrant:
    id: int
    ttl_s: int
    header: Header

    @classmethod
    def from_pb(cls, r: rpc_pb2.LeaseGrantResponse) -> LeaseGrant:
        return cls(r.ID, r.TTL, Header.from_pb(r.header))


@dataclass(frozen=True, slots=True)
class LeaseTimeToLive:
    """``ttl_s`` is -1 when the lease does not exist (expired or revoked), as etcd reports."""

    id: int
    ttl_s: int
    granted_ttl_s: int
    keys: tuple[bytes, ...]
    header: Header

    @classmethod
    def from_pb(cls, r: rpc_pb2.LeaseTimeToLiveResponse) -> LeaseTimeToLive:
        return cls(r.ID, r.TTL, r.grantedTTL, tuple(r.keys), Header.from_pb(r.header))


@dataclass(frozen=True, slots=True)
class Member:
    id: int
    name: str
    peer_urls: tuple[str, ...]
    client_urls: tuple[str, ...]
    is_learner: bool

    @classmethod
    def from_pb(cls, m: rpc_pb2.Member) -> Member:
        return cls(m.ID, m.name, tuple(m.peerURLs), tuple(m.clientURLs), m.isLearner)


@dataclass(frozen=True, slots=True)
class Status:
    endpoint: str
    version: str
    db_size_bytes: int
    db_size_in_use_bytes: int
    leader: int
    raft_index: int
    raft_term: int
    raft_applied_index: int
    errors: tuple[str, ...]
    is_learner: bool
    header: Header

    @classmethod
    def from_pb(cls, endpoint: str, r: rpc_pb2.StatusResponse) -> Status:
        return cls(
            endpoint,
            r.version,
            r.dbSize,
            r.dbSizeInUse,
            r.leader,
            r.raftIndex,
            r.raftTerm,
            r.raftAppliedIndex,
            tuple(r.errors),
            r.isLearner,
            Header.from_pb(r.header),
        )


@dataclass(frozen=True, slots=True)
class HashKVResult:
    hash: int
    compact_revision: int
    header: Header

    @classmethod
    def from_pb(cls, r: rpc_pb2.HashKVResponse) -> HashKVResult:
        return cls(r.hash, r.compact_revision, Header.from_pb(r.header))


@dataclass(frozen=True, slots=True)
class Alarm:
    member_id: int
    alarm: str

    @classmethod
    def from_pb(cls, a: rpc_pb2.AlarmMember) -> Alarm:
        return cls(a.memberID, rpc_pb2.AlarmType.Name(a.alarm))
