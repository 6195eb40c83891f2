"""Field numbers, names and types of key etcd messages, checked against a table kept by hand.

The table below was copied field by field from etcd v3.4's ``etcdserverpb/rpc.proto``,
``mvccpb/kv.proto`` and the lock/election protos. It is deliberately independent of our .proto
sources: a typo in either one shows up here as a mismatch. (``test_etcd_binary_descriptors.py``
adds a machine check against the descriptors inside the real etcd binary when it is installed.)
"""

from __future__ import annotations

import pytest
from google.protobuf import descriptor_pool
from google.protobuf.descriptor import Descriptor, FieldDescriptor

from kvorum.api.pb.etcdserverpb import rpc_pb2, rpc_pb2_grpc
from kvorum.api.pb.mvccpb import kv_pb2
from kvorum.api.pb.v3electionpb import v3election_pb2_grpc
from kvorum.api.pb.v3lockpb import v3lock_pb2_grpc

_TYPE_NAMES = {
    FieldDescriptor.TYPE_BOOL: "bool",
    FieldDescriptor.TYPE_BYTES: "bytes",
    FieldDescriptor.TYPE_ENUM: "enum",
    FieldDescriptor.TYPE_INT64: "int64",
    FieldDescriptor.TYPE_MESSAGE: "message",
    FieldDescriptor.TYPE_STRING: "string",
    FieldDescriptor.TYPE_UINT32: "uint32",
    FieldDescriptor.TYPE_UINT64: "uint64",
}

# message -> [(field name, number, type, repeated, oneof or None, referenced type or None)]
Row = tuple[str, int, str, bool, str | None, str | None]
HDR: Row = ("header", 1, "message", False, None, "etcdserverpb.ResponseHeader")
KV = "mvccpb.KeyValue"

FIELDS: dict[str, list[Row]] = {
    "etcdserverpb.ResponseHeader": [
        ("cluster_id", 1, "uint64", False, None, None),
        ("member_id", 2, "uint64", False, None, None),
        ("revision", 3, "int64", False, None, None),
        ("raft_term", 4, "uint64", False, None, None),
    ],
    "etcdserverpb.RangeRequest": [
        ("key", 1, "bytes", False, None, None),
        ("range_end", 2, "bytes", False, None, None),
        ("limit", 3, "int64", False, None, None),
        ("revision", 4, "int64", False, None, None),
        ("sort_order", 5, "enum", False, None, "etcdserverpb.RangeRequest.SortOrder"),
        ("sort_target", 6, "enum", False, None, "etcdserverpb.RangeRequest.SortTarget"),
        ("serializable", 7, "bool", False, None, None),
        ("keys_only", 8, "bool", False, None, None),
        ("count_only", 9, "bool", False, None, None),
        ("min_mod_revision", 10, "int64", False, None, None),
        ("max_mod_revision", 11, "int64", False, None, None),
        ("min_create_revision", 12, "int64", False, None, None),
        ("max_create_revision", 13, "int64", False, None, None),
    ],
    "etcdserverpb.RangeResponse": [
        HDR,
        ("kvs", 2, "message", True, None, KV),
        ("more", 3, "bool", False, None, None),
        ("count", 4, "int64", False, None, None),
    ],
    "etcdserverpb.PutRequest": [
        ("key", 1, "bytes", False, None, None),
        ("value", 2, "bytes", False, None, None),
        ("lease", 3, "int64", False, None, None),
        ("prev_kv", 4, "bool", False, None, None),
        ("ignore_value", 5, "bool", False, None, None),
        ("ignore_lease", 6, "bool", False, None, None),
    ],
    "etcdserverpb.PutResponse": [HDR, ("prev_kv", 2, "message", False, None, KV)],
    "etcdserverpb.DeleteRangeRequest": [
        ("key", 1, "bytes", False, None, None),
        ("range_end", 2, "bytes", False, None, None),
        ("prev_kv", 3, "bool", False, None, None),
    ],
    "etcdserverpb.DeleteRangeResponse": [
        HDR,
        ("deleted", 2, "int64", False, None, None),
        ("prev_kvs", 3, "message", True, None, KV),
    ],
    "etcdserverpb.Compare": [
        ("result", 1, "enum", False, None, "etcdserverpb.Compare.CompareResult"),
        ("target", 2, "enum", False, None, "etcdserverpb.Compare.CompareTarget"),
        ("key", 3, "bytes", False, None, None),
        ("version", 4, "int64", False, "target_union", None),
        ("create_revision", 5, "int64", False, "target_union", None),
        ("mod_revision", 6, "int64", False, "target_union", None),
        ("value", 7, "bytes", False, "target_union", None),
        ("lease", 8, "int64", False, "target_union", None),
        ("range_end", 64, "bytes", False, None, None),
    ],
    "etcdserverpb.RequestOp": [
        ("request_range", 1, "message", False, "request", "etcdserverpb.RangeRequest"),
        ("request_put", 2, "message", False, "request", "etcdserverpb.PutRequest"),
        ("request_delete_range", 3, "message", False, "request", "etcdserverpb.DeleteRangeRequest"),
        ("request_txn", 4, "message", False, "request", "etcdserverpb.TxnRequest"),
    ],
    "etcdserverpb.ResponseOp": [
        ("response_range", 1, "message", False, "response", "etcdserverpb.RangeResponse"),
        ("response_put", 2, "message", False, "response", "etcdserverpb.PutResponse"),
        (
            "response_delete_range",
            3,
            "message",
            False,
            "response",
            "etcdserverpb.DeleteRangeResponse",
        ),
        ("response_txn", 4, "message", False, "response", "etcdserverpb.TxnResponse"),
    ],
    "etcdserverpb.TxnRequest": [
        ("compare", 1, "message", True, None, "etcdserverpb.Compare"),
        ("success", 2, "message", True, None, "etcdserverpb.RequestOp"),
        ("failure", 3, "message", True, None, "etcdserverpb.RequestOp"),
    ],
    "etcdserverpb.TxnResponse": [
        HDR,
        ("succeeded", 2, "bool", False, None, None),
        ("responses", 3, "message", True, None, "etcdserverpb.ResponseOp"),
    ],
    "etcdserverpb.WatchRequest": [
        ("create_request", 1, "message", False, "request_union", "etcdserverpb.WatchCreateRequest"),
        ("cancel_request", 2, "message", False, "request_union", "etcdserverpb.WatchCancelRequest"),
        (
            "progress_request",
            3,
            "message",
            False,
            "request_union",
            "etcdserverpb.WatchProgressRequest",
        ),
    ],
    "etcdserverpb.WatchCreateRequest": [
        ("key", 1, "bytes", False, None, None),
        ("range_end", 2, "bytes", False, None, None),
        ("start_revision", 3, "int64", False, None, None),
        ("progress_notify", 4, "bool", False, None, None),
        ("filters", 5, "enum", True, None, "etcdserverpb.WatchCreateRequest.FilterType"),
        ("prev_kv", 6, "bool", False, None, None),
        ("watch_id", 7, "int64", False, None, None),
        ("fragment", 8, "bool", False, None, None),
    ],
    "etcdserverpb.WatchResponse": [
        HDR,
        ("watch_id", 2, "int64", False, None, None),
        ("created", 3, "bool", False, None, None),
        ("canceled", 4, "bool", False, None, None),
        ("compact_revision", 5, "int64", False, None, None),
        ("cancel_reason", 6, "string", False, None, None),
        ("fragment", 7, "bool", False, None, None),
        ("events", 11, "message", True, None, "mvccpb.Event"),
    ],
    "etcdserverpb.LeaseGrantRequest": [
        ("TTL", 1, "int64", False, None, None),
        ("ID", 2, "int64", False, None, None),
    ],
    "etcdserverpb.LeaseGrantResponse": [
        HDR,
        ("ID", 2, "int64", False, None, None),
        ("TTL", 3, "int64", False, None, None),
        ("error", 4, "string", False, None, None),
    ],
    "etcdserverpb.LeaseTimeToLiveResponse": [
        HDR,
        ("ID", 2, "int64", False, None, None),
        ("TTL", 3, "int64", False, None, None),
        ("grantedTTL", 4, "int64", False, None, None),
        ("keys", 5, "bytes", True, None, None),
    ],
    "etcdserverpb.Member": [
        ("ID", 1, "uint64", False, None, None),
        ("name", 2, "string", False, None, None),
        ("peerURLs", 3, "string", True, None, None),
        ("clientURLs", 4, "string", True, None, None),
        ("isLearner", 5, "bool", False, None, None),
    ],
    "etcdserverpb.MemberListResponse": [
        HDR,
        ("members", 2, "message", True, None, "etcdserverpb.Member"),
    ],
    "etcdserverpb.StatusResponse": [
        HDR,
        ("version", 2, "string", False, None, None),
        ("dbSize", 3, "int64", False, None, None),
        ("leader", 4, "uint64", False, None, None),
        ("raftIndex", 5, "uint64", False, None, None),
        ("raftTerm", 6, "uint64", False, None, None),
        ("raftAppliedIndex", 7, "uint64", False, None, None),
        ("errors", 8, "string", True, None, None),
        ("dbSizeInUse", 9, "int64", False, None, None),
        ("isLearner", 10, "bool", False, None, None),
    ],
    "etcdserverpb.AlarmRequest": [
        ("action", 1, "enum", False, None, "etcdserverpb.AlarmRequest.AlarmAction"),
        ("memberID", 2, "uint64", False, None, None),
        ("alarm", 3, "enum", False, None, "etcdserverpb.AlarmType"),
    ],
    "etcdserverpb.AuthRoleGrantPermissionRequest": [
        ("name", 1, "string", False, None, None),
        ("perm", 2, "message", False, None, "authpb.Permission"),
    ],
    "mvccpb.KeyValue": [
        ("key", 1, "bytes", False, None, None),
        ("create_revision", 2, "int64", False, None, None),
        ("mod_revision", 3, "int64", False, None, None),
        ("version", 4, "int64", False, None, None),
        ("value", 5, "bytes", False, None, None),
        ("lease", 6, "int64", False, None, None),
    ],
    "mvccpb.Event": [
        ("type", 1, "enum", False, None, "mvccpb.Event.EventType"),
        ("kv", 2, "message", False, None, KV),
        ("prev_kv", 3, "message", False, None, KV),
    ],
    "authpb.Permission": [
        ("permType", 1, "enum", False, None, "authpb.Permission.Type"),
        ("key", 2, "bytes", False, None, None),
        ("range_end", 3, "bytes", False, None, None),
    ],
    "v3lockpb.LockRequest": [
        ("name", 1, "bytes", False, None, None),
        ("lease", 2, "int64", False, None, None),
    ],
    "v3electionpb.LeaderKey": [
        ("name", 1, "bytes", False, None, None),
        ("key", 2, "bytes", False, None, None),
        ("rev", 3, "int64", False, None, None),
        ("lease", 4, "int64", False, None, None),
    ],
}

ENUMS: dict[str, dict[str, int]] = {
    "etcdserverpb.RangeRequest.SortOrder": {"NONE": 0, "ASCEND": 1, "DESCEND": 2},
    "etcdserverpb.RangeRequest.SortTarget": {
        "KEY": 0,
        "VERSION": 1,
        "CREATE": 2,
        "MOD": 3,
        "VALUE": 4,
    },
    "etcdserverpb.Compare.CompareResult": {"EQUAL": 0, "GREATER": 1, "LESS": 2, "NOT_EQUAL": 3},
    "etcdserverpb.Compare.CompareTarget": {
        "VERSION": 0,
        "CREATE": 1,
        "MOD": 2,
        "VALUE": 3,
        "LEASE": 4,
    },
    "etcdserverpb.WatchCreateRequest.FilterType": {"NOPUT": 0, "NODELETE": 1},
    "etcdserverpb.AlarmType": {"NONE": 0, "NOSPACE": 1, "CORRUPT": 2},
    "etcdserverpb.AlarmRequest.AlarmAction": {"GET": 0, "ACTIVATE": 1, "DEACTIVATE": 2},
    "mvccpb.Event.EventType": {"PUT": 0, "DELETE": 1},
    "authpb.Permission.Type": {"READ": 0, "WRITE": 1, "READWRITE": 2},
}

# service -> {method: (request, response, client streaming, server streaming)} for etcd v3.4.
Method = tuple[str, str, bool, bool]
SERVICES: dict[str, dict[str, Method]] = {
    "etcdserverpb.KV": {
        "Range": ("RangeRequest", "RangeResponse", False, False),
        "Put": ("PutRequest", "PutResponse", False, False),
        "DeleteRange": ("DeleteRangeRequest", "DeleteRangeResponse", False, False),
        "Txn": ("TxnRequest", "TxnResponse", False, False),
        "Compact": ("CompactionRequest", "CompactionResponse", False, False),
    },
    "etcdserverpb.Watch": {"Watch": ("WatchRequest", "WatchResponse", True, True)},
    "etcdserverpb.Lease": {
        "LeaseGrant": ("LeaseGrantRequest", "LeaseGrantResponse", False, False),
        "LeaseRevoke": ("LeaseRevokeRequest", "LeaseRevokeResponse", False, False),
        "LeaseKeepAlive": ("LeaseKeepAliveRequest", "LeaseKeepAliveResponse", True, True),
        "LeaseTimeToLive": ("LeaseTimeToLiveRequest", "LeaseTimeToLiveResponse", False, False),
        "LeaseLeases": ("LeaseLeasesRequest", "LeaseLeasesResponse", False, False),
    },
    "etcdserverpb.Cluster": {
        "MemberAdd": ("MemberAddRequest", "MemberAddResponse", False, False),
        "MemberRemove": ("MemberRemoveRequest", "MemberRemoveResponse", False, False),
        "MemberUpdate": ("MemberUpdateRequest", "MemberUpdateResponse", False, False),
        "MemberList": ("MemberListRequest", "MemberListResponse", False, False),
        "MemberPromote": ("MemberPromoteRequest", "MemberPromoteResponse", False, False),
    },
    "etcdserverpb.Maintenance": {
        "Alarm": ("AlarmRequest", "AlarmResponse", False, False),
        "Status": ("StatusRequest", "StatusResponse", False, False),
        "Defragment": ("DefragmentRequest", "DefragmentResponse", False, False),
        "Hash": ("HashRequest", "HashResponse", False, False),
        "HashKV": ("HashKVRequest", "HashKVResponse", False, False),
        "Snapshot": ("SnapshotRequest", "SnapshotResponse", False, True),
        "MoveLeader": ("MoveLeaderRequest", "MoveLeaderResponse", False, False),
    },
    "etcdserverpb.Auth": {
        "AuthEnable": ("AuthEnableRequest", "AuthEnableResponse", False, False),
        "AuthDisable": ("AuthDisableRequest", "AuthDisableResponse", False, False),
        "Authenticate": ("AuthenticateRequest", "AuthenticateResponse", False, False),
        "UserAdd": ("AuthUserAddRequest", "AuthUserAddResponse", False, False),
        "UserGet": ("AuthUserGetRequest", "AuthUserGetResponse", False, False),
        "UserList": ("AuthUserListRequest", "AuthUserListResponse", False, False),
        "UserDelete": ("AuthUserDeleteRequest", "AuthUserDeleteResponse", False, False),
        "UserChangePassword": (
            "AuthUserChangePasswordRequest",
            "AuthUserChangePasswordResponse",
            False,
            False,
        ),
        "UserGrantRole": ("AuthUserGrantRoleRequest", "AuthUserGrantRoleResponse", False, False),
        "UserRevokeRole": ("AuthUserRevokeRoleRequest", "AuthUserRevokeRoleResponse", False, False),
        "RoleAdd": ("AuthRoleAddRequest", "AuthRoleAddResponse", False, False),
        "RoleGet": ("AuthRoleGetRequest", "AuthRoleGetResponse", False, False),
        "RoleList": ("AuthRoleListRequest", "AuthRoleListResponse", False, False),
        "RoleDelete": ("AuthRoleDeleteRequest", "AuthRoleDeleteResponse", False, False),
        "RoleGrantPermission": (
            "AuthRoleGrantPermissionRequest",
            "AuthRoleGrantPermissionResponse",
            False,
            False,
        ),
        "RoleRevokePermission": (
            "AuthRoleRevokePermissionRequest",
            "AuthRoleRevokePermissionResponse",
            False,
            False,
        ),
    },
    "v3lockpb.Lock": {
        "Lock": ("LockRequest", "LockResponse", False, False),
        "Unlock": ("UnlockRequest", "UnlockResponse", False, False),
    },
    "v3electionpb.Election": {
        "Campaign": ("CampaignRequest", "CampaignResponse", False, False),
        "Proclaim": ("ProclaimRequest", "ProclaimResponse", False, False),
        "Leader": ("LeaderRequest", "LeaderResponse", False, False),
        "Observe": ("LeaderRequest", "LeaderResponse", False, True),
        "Resign": ("ResignRequest", "ResignResponse", False, False),
    },
}

# Methods added by etcd v3.5 that we also declare; a v3.4 client never calls them.
SERVICE_ADDITIONS_3_5 = {
    ("etcdserverpb.Maintenance", "Downgrade"),
    ("etcdserverpb.Auth", "AuthStatus"),
}


def _message(full_name: str) -> Descriptor:
    return descriptor_pool.Default().FindMessageTypeByName(full_name)


def _row(field: FieldDescriptor) -> Row:
    ref = None
    if field.type == FieldDescriptor.TYPE_MESSAGE:
        ref = field.message_type.full_name
    elif field.type == FieldDescriptor.TYPE_ENUM:
        ref = field.enum_type.full_name
    oneof = field.containing_oneof.name if field.containing_oneof is not None else None
    return (field.name, field.number, _TYPE_NAMES[field.type], field.is_repeated, oneof, ref)


@pytest.mark.parametrize("full_name", sorted(FIELDS))
def test_message_fields_match_etcd(full_name: str) -> None:
    ours = sorted((_row(f) for f in _message(full_name).fields), key=lambda r: r[1])
    expected = sorted(FIELDS[full_name], key=lambda r: r[1])
    assert ours == expected


def test_fields_added_after_3_4_are_the_documented_ones() -> None:
    """The 3.5 additions sit on fresh numbers, so a 3.4 peer simply ignores them."""
    extras = {
        "etcdserverpb.MemberListRequest": ("linearizable", 1),
        "etcdserverpb.HashKVResponse": ("hash_revision", 4),
        "etcdserverpb.AuthUserAddRequest": ("hashedPassword", 4),
        "etcdserverpb.AuthUserChangePasswordRequest": ("hashedPassword", 3),
    }
    for full_name, (name, number) in extras.items():
        assert _message(full_name).fields_by_name[name].number == number


@pytest.mark.parametrize("full_name", sorted(ENUMS))
def test_enum_values_match_etcd(full_name: str) -> None:
    enum = descriptor_pool.Default().FindEnumTypeByName(full_name)
    assert {v.name: v.number for v in enum.values} == ENUMS[full_name]


@pytest.mark.parametrize("service", sorted(SERVICES))
def test_service_methods_match_etcd(service: str) -> None:
    desc = descriptor_pool.Default().FindServiceByName(service)
    package = service.split(".")[0]
    ours = {
        m.name: (
            m.input_type.full_name.removeprefix(f"{package}."),
            m.output_type.full_name.removeprefix(f"{package}."),
            m.client_streaming,
            m.server_streaming,
        )
        for m in desc.methods
        if (service, m.name) not in SERVICE_ADDITIONS_3_5
    }
    assert ours == SERVICES[service]


def test_stubs_call_etcd_method_paths() -> None:
    """gRPC routes by "/package.Service/Method": the generated stubs must use etcd's paths."""
    seen: list[str] = []

    class RecordingChannel:
        def __getattr__(self, kind: str) -> object:
            def factory(path: str, *args: object, **kwargs: object) -> None:
                seen.append(path)

            return factory

    channel = RecordingChannel()
    rpc_pb2_grpc.KVStub(channel)
    rpc_pb2_grpc.WatchStub(channel)
    rpc_pb2_grpc.MaintenanceStub(channel)
    v3lock_pb2_grpc.LockStub(channel)
    v3election_pb2_grpc.ElectionStub(channel)
    assert "/etcdserverpb.KV/Range" in seen
    assert "/etcdserverpb.Watch/Watch" in seen
    assert "/etcdserverpb.Maintenance/Status" in seen
    assert "/v3lockpb.Lock/Lock" in seen
    assert "/v3electionpb.Election/Observe" in seen


def test_known_encodings() -> None:
    """Byte-exact encodings, worked out by hand from the protobuf wire format and the numbers."""
    put = rpc_pb2.PutRequest(key=b"foo", value=b"bar", lease=1)
    # field 1 (bytes) "foo", field 2 (bytes) "bar", field 3 (varint) 1
    assert put.SerializeToString() == b"\x0a\x03foo\x12\x03bar\x18\x01"
    cmp = rpc_pb2.Compare(
        result=rpc_pb2.Compare.NOT_EQUAL,
        target=rpc_pb2.Compare.LEASE,
        key=b"k",
        lease=5,
        range_end=b"l",
    )
    # 1:3, 2:4, 3:"k", 8:5, then tag 64 (wire type 2) encodes as the two-byte varint 0x82 0x04.
    assert cmp.SerializeToString() == b"\x08\x03\x10\x04\x1a\x01k\x40\x05\x82\x04\x01l"
    hdr = rpc_pb2.ResponseHeader(cluster_id=2**64 - 1, revision=-1)
    back = rpc_pb2.ResponseHeader.FromString(hdr.SerializeToString())
    assert (back.cluster_id, back.revision) == (2**64 - 1, -1)
    event = kv_pb2.Event(type=kv_pb2.Event.DELETE, kv=kv_pb2.KeyValue(key=b"a", mod_revision=7))
    # 1:1, then 2: a 5-byte KeyValue {1:"a", 3:7}
    assert event.SerializeToString() == b"\x08\x01\x12\x05\x0a\x01a\x18\x07"
