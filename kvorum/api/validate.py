"""etcd's request checks, made on the protobuf request before anything is proposed.

The rules and their order follow etcd 3.4's v3rpc handlers: a Range, Put or DeleteRange needs
a key; Put's `ignore_value` / `ignore_lease` exclude a value / lease; a Txn may have at most
`max_txn_ops` compares and ops per branch (a nested txn counts against what its parent left),
every compare needs a key, every op must be set, and no key may be written twice in a branch
(`kvorum.mvcc.check_txn_request`). A request that would be proposed through raft must fit in
`max_request_bytes` once wrapped in etcd's internal raft request (see `internal_size_bytes`).
Each failure raises the `kvorum.api.errors` class that carries etcd's code and text.
"""

from __future__ import annotations

from dataclasses import dataclass

from kvorum.api.errors import (
    EmptyKeyError,
    EmptyRequestOpError,
    InvalidCompareError,
    InvalidSortOptionError,
    LeaseProvidedError,
    RequestTooLargeError,
    TooManyOpsError,
    ValueProvidedError,
)
from kvorum.api.pb.etcdserverpb import rpc_pb2
from kvorum.mvcc import TxnRequest, check_txn_request

__all__ = [
    "DEFAULT_MAX_REQUEST_BYTES",
    "DEFAULT_MAX_TXN_OPS",
    "INTERNAL_HEADER_BYTES",
    "Limits",
    "check_compact",
    "check_delete_range",
    "check_put",
    "check_range",
    "check_txn",
    "check_txn_fields",
    "internal_size_bytes",
    "is_txn_readonly",
    "is_txn_serializable",
]

#: etcd's defaults for --max-txn-ops and --max-request-bytes (1.5 MiB).
DEFAULT_MAX_TXN_OPS = 128
DEFAULT_MAX_REQUEST_BYTES = 3 * 1024 * 1024 // 2

# etcd measures the InternalRaftRequest it proposes: a RequestHeader (field 100: a 2-byte tag
# and a 1-byte length) holding the request id (a 1-byte tag and, since ids carry the member id
# in their top bits, a 9-byte varint), then the request itself as a field with a 1-byte tag.
# Auth adds a user name and revision to the header; kvorum has no auth yet.
INTERNAL_HEADER_BYTES = 2 + 1 + 1 + 9
_OP_TAG_BYTES = 1

_SORT_ORDERS = frozenset(rpc_pb2.RangeRequest.SortOrder.values())
_SORT_TARGETS = frozenset(rpc_pb2.RangeRequest.SortTarget.values())
_COMPARE_RESULTS = frozenset(rpc_pb2.Compare.CompareResult.values())
_COMPARE_TARGETS = frozenset(rpc_pb2.Compare.CompareTarget.values())


@dataclass(frozen=True, slots=True)
class Limits:
    """The request limits the server was started with (--max-txn-ops, --max-request-bytes)."""

    max_txn_ops: int = DEFAULT_MAX_TXN_OPS
    max_request_bytes: int = DEFAULT_MAX_REQUEST_BYTES


def _varint_len(n: int) -> int:
    return max(1, (n.bit_length() + 6) // 7)


def internal_size_bytes(request_bytes: int) -> int:
    """Size of etcd's InternalRaftRequest around a request of `request_bytes` encoded bytes."""
    return INTERNAL_HEADER_BYTES + _OP_TAG_BYTES + _varint_len(request_bytes) + request_bytes


_Proposed = (
    rpc_pb2.PutRequest | rpc_pb2.DeleteRangeRequest | rpc_pb2.TxnRequest | rpc_pb2.CompactionRequest
)


def _check_size(req: _Proposed, limits: Limits) -> None:
    # Only proposed requests are measured: etcd answers reads without proposing them.
    if internal_size_bytes(req.ByteSize()) > limits.max_request_bytes:
        raise RequestTooLargeError(f"{req.ByteSize()} bytes")


def _check_range_fields(req: rpc_pb2.RangeRequest) -> None:
    if not req.key:
        raise EmptyKeyError
    if req.sort_order not in _SORT_ORDERS or req.sort_target not in _SORT_TARGETS:
        raise InvalidSortOptionError


def _check_put_fields(req: rpc_pb2.PutRequest) -> None:
    if not req.key:
        raise EmptyKeyError
    if req.ignore_value and req.value:
        raise ValueProvidedError
    if req.ignore_lease and req.lease:
        raise LeaseProvidedError


def check_range(req: rpc_pb2.RangeRequest) -> None:
    _check_range_fields(req)


def check_put(req: rpc_pb2.PutRequest, limits: Limits) -> None:
    _check_put_fields(req)
    _check_size(req, limits)


def check_delete_range(req: rpc_pb2.DeleteRangeRequest, limits: Limits) -> None:
    if not req.key:
        raise EmptyKeyError
    _check_size(req, limits)


def check_compact(req: rpc_pb2.CompactionRequest, limits: Limits) -> None:
    _check_size(req, limits)


def _check_txn_fields(req: rpc_pb2.TxnRequest, max_ops: int) -> None:
    ops = max(len(req.compare), len(req.success), len(req.failure))
    if ops > max_ops:
        raise TooManyOpsError
    for cmp in req.compare:
        if not cmp.key:
            raise EmptyKeyError
        if cmp.result not in _COMPARE_RESULTS or cmp.target not in _COMPARE_TARGETS:
            raise InvalidCompareError
    # etcd lets a nested txn use only what its parent's widest list left of the budget.
    for branch in (req.success, req.failure):
        for op in branch:
            which = op.WhichOneof("request")
            if which == "request_range":
                _check_range_fields(op.request_range)
            elif which == "request_put":
                _check_put_fields(op.request_put)
            elif which == "request_delete_range":
                if not op.request_delete_range.key:
                    raise EmptyKeyError
            elif which == "request_txn":
                _check_txn_fields(op.request_txn, max_ops - ops)
            else:
                raise EmptyRequestOpError


def is_txn_readonly(req: rpc_pb2.TxnRequest) -> bool:
    """etcd's rule: a txn whose every top-level op is a range is answered without raft."""
    return all(op.WhichOneof("request") == "request_range" for op in req.success) and all(
        op.WhichOneof("request") == "request_range" for op in req.failure
    )


def is_txn_serializable(req: rpc_pb2.TxnRequest) -> bool:
    """A read-only txn whose every range is serializable needs no ReadIndex round."""
    return all(
        op.WhichOneof("request") == "request_range" and op.request_range.serializable
        for branch in (req.success, req.failure)
        for op in branch
    )


def check_txn_fields(req: rpc_pb2.TxnRequest, limits: Limits) -> None:
    """etcd's checkTxnRequest: op counts, keys, set ops (and known enum values)."""
    _check_txn_fields(req, limits.max_txn_ops)


def check_txn(req: rpc_pb2.TxnRequest, converted: TxnRequest, limits: Limits) -> None:
    """The txn checks after `check_txn_fields`, in etcd's order: duplicate keys, then size.

    `converted` is `req` as mvcc types (the duplicate-key rule is written against those).
    """
    check_txn_request(converted)
    if not is_txn_readonly(req):
        _check_size(req, limits)
