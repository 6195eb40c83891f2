"""Records, requests and responses of the mvcc store, shaped after etcd's protobuf messages.

Field names and enum numbers follow `mvccpb` and `etcdserverpb`, so the API layer converts
field by field. Byte strings use b"" where protobuf has "unset": an empty `range_end` means a
single key, `b"\\0"` means every key from `key` on.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field


@dataclass(frozen=True, slots=True)
class KeyValue:
    """One version of one key (mvccpb.KeyValue)."""

    key: bytes
    create_revision: int
    mod_revision: int
    version: int
    value: bytes = b""
    lease: int = 0


class EventType(enum.IntEnum):
    PUT = 0
    DELETE = 1


@dataclass(frozen=True, slots=True)
class Event:
    """One change (mvccpb.Event). A delete's kv carries only key and mod_revision, as etcd's.

    `prev_kv` is the key's state at revision `kv.mod_revision - 1` (what an etcd watcher with
    prev_kv receives), None when the key did not exist then or that revision is compacted.
    """

    type: EventType
    kv: KeyValue
    prev_kv: KeyValue | None = None


class SortOrder(enum.IntEnum):
    NONE = 0
    ASCEND = 1
    DESCEND = 2


class SortTarget(enum.IntEnum):
    KEY = 0
    VERSION = 1
    CREATE = 2
    MOD = 3
    VALUE = 4


class CompareResult(enum.IntEnum):
    EQUAL = 0
    GREATER = 1
    LESS = 2
    NOT_EQUAL = 3


class CompareTarget(enum.IntEnum):
    VERSION = 0
    CREATE = 1
    MOD = 2
    VALUE = 3
    LEASE = 4


# --- requests ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class RangeRequest:
    key: bytes
    range_end: bytes = b""
    limit: int = 0
    revision: int = 0
    sort_order: SortOrder = SortOrder.NONE
    sort_target: SortTarget = SortTarget.KEY
    keys_only: bool = False
    count_only: bool = False
    min_mod_revision: int = 0
    max_mod_revision: int = 0
    min_create_revision: int = 0
    max_create_revision: int = 0


@dataclass(frozen=True, slots=True)
class PutRequest:
    key: bytes
    value: bytes = b""
    lease: int = 0
    prev_kv: bool = False
    ignore_value: bool = False
    ignore_lease: bool = False


@dataclass(frozen=True, slots=True)
class DeleteRangeRequest:
    key: bytes
    range_end: bytes = b""
    prev_kv: bool = False


@dataclass(frozen=True, slots=True)
class Compare:
    """One txn guard. Only the field named by `target` is read; unset fields are 0 / b""."""

    key: bytes
    target: CompareTarget
    result: CompareResult
    range_end: bytes = b""
    version: int = 0
    create_revision: int = 0
    mod_revision: int = 0
    value: bytes = b""
    lease: int = 0


@dataclass(frozen=True, slots=True)
class TxnRequest:
    compare: tuple[Compare, ...] = ()
    success: tuple[RequestOp, ...] = ()
    failure: tuple[RequestOp, ...] = ()


RequestOp = RangeRequest | PutRequest | DeleteRangeRequest | TxnRequest


# --- responses -----------------------------------------------------------------------------
# `revision` is what etcd puts in the response header. Write responses also carry the events
# the write produced (for the watch hub and the lessor); a nested TxnResponse carries none,
# its top-level response carries them all, in revision order.


@dataclass(frozen=True, slots=True)
class RangeResponse:
    revision: int
    kvs: tuple[KeyValue, ...]
    count: int
    more: bool = False


@dataclass(frozen=True, slots=True)
class PutResponse:
    revision: int
    prev_kv: KeyValue | None = None
    events: tuple[Event, ...] = ()


@dataclass(frozen=True, slots=True)
class DeleteRangeResponse:
    revision: int
    deleted: int
    prev_kvs: tuple[KeyValue, ...] = ()
    events: tuple[Event, ...] = ()


@dataclass(frozen=True, slots=True)
class TxnResponse:
    revision: int
    succeeded: bool
    responses: tuple[ResponseOp, ...] = field(default=())
    events: tuple[Event, ...] = ()


ResponseOp = RangeResponse | PutResponse | DeleteRangeResponse | TxnResponse


@dataclass(frozen=True, slots=True)
class EventBatch:
    """Events read from history; `next_revision` is where the next read continues."""

    events: tuple[Event, ...]
    next_revision: int
