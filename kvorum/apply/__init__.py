"""The apply layer: committed raft entries -> mvcc, leases, membership and alarms.

`payload` is the format of a proposal (op tag + etcd protobuf request), `requests` the requests
and responses beyond mvcc's, `applier` the `Applier` that executes entries exactly once per
member, `errors` its own error table.
"""

from kvorum.apply.applier import (
    DEFAULT_QUOTA_BYTES,
    KV_OVERHEAD_BYTES,
    LEASE_OVERHEAD_BYTES,
    Applier,
    ApplyBatch,
    ApplyResult,
    ConfChangeApplier,
    txn_cost_bytes,
)
from kvorum.apply.errors import ERRORS, ApplyError, CorruptError, NoSpaceError
from kvorum.apply.payload import Op, PayloadError, decode_payload, encode_payload, encode_pb
from kvorum.apply.requests import (
    AlarmRequest,
    AlarmResponse,
    ClusterVersionSetRequest,
    ClusterVersionSetResponse,
    CompactRequest,
    CompactResponse,
    LeaseGrantRequest,
    LeaseGrantResponse,
    LeaseRevokeRequest,
    LeaseRevokeResponse,
    MemberAttrSetRequest,
    MembersResponse,
    Request,
    Response,
)

__all__ = [
    "DEFAULT_QUOTA_BYTES",
    "ERRORS",
    "KV_OVERHEAD_BYTES",
    "LEASE_OVERHEAD_BYTES",
    "AlarmRequest",
    "AlarmResponse",
    "Applier",
    "ApplyBatch",
    "ApplyError",
    "ApplyResult",
    "ClusterVersionSetRequest",
    "ClusterVersionSetResponse",
    "CompactRequest",
    "CompactResponse",
    "ConfChangeApplier",
    "CorruptError",
    "LeaseGrantRequest",
    "LeaseGrantResponse",
    "LeaseRevokeRequest",
    "LeaseRevokeResponse",
    "MemberAttrSetRequest",
    "MembersResponse",
    "NoSpaceError",
    "Op",
    "PayloadError",
    "Request",
    "Response",
    "decode_payload",
    "encode_payload",
    "encode_pb",
    "txn_cost_bytes",
]
