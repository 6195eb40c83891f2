"""The payload of a NORMAL raft entry: one client write, encoded once by the proposer.

Format: ``op tag (1 byte) || body``. The body is the etcd protobuf request of that op,
serialized (`etcdserverpb.PutRequest`, `TxnRequest`, ... ; `Member` for a MemberAttrSet), or the
UTF-8 version string for a ClusterVersionSet. This plays the part of etcd's
`InternalRaftRequest`; its header (request id) is the envelope's (`kvorum.server.envelope`), and
the user a request is sent as (etcd's header username and auth revision) is an `AS_USER`
payload wrapped around the request's own (see `encode_payload`).

Every member decodes the very bytes the leader replicated, so what they apply is the same by
construction; decoding is strict (unknown tag, corrupt protobuf, unknown fields or enum values
all raise `PayloadError`) so a payload from a newer or broken proposer is refused the same way
on every member instead of being half-understood. (So a later version that adds a field or
an op must not propose it before the whole cluster runs that version: gate it on the cluster
version, as etcd gates its features.)
"""

from __future__ import annotations

import enum
import struct
from collections.abc import Callable
from typing import Any

from google.protobuf.message import DecodeError, Message
from google.protobuf.unknown_fields import UnknownFieldSet

from kvorum.api.pb.authpb import auth_pb2
from kvorum.api.pb.etcdserverpb import rpc_pb2
from kvorum.apply.requests import (
    AlarmRequest,
    ClusterVersionSetRequest,
    CompactRequest,
    LeaseGrantRequest,
    LeaseRevokeRequest,
    MemberAttrSetRequest,
    Request,
)
from kvorum.auth.requests import (
    AsUser,
    AuthDisableRequest,
    AuthEnableRequest,
    AuthenticateRequest,
    RoleAddRequest,
    RoleDeleteRequest,
    RoleGrantPermissionRequest,
    RoleRevokePermissionRequest,
    UserAddRequest,
    UserChangePasswordRequest,
    UserDeleteRequest,
    UserGrantRoleRequest,
    UserRevokeRoleRequest,
)
from kvorum.auth.tokens import TOKEN_PREFIX_LENGTH
from kvorum.auth.types import AuthInfo, Permission, PermType
from kvorum.membership.types import AlarmAction, AlarmType
from kvorum.mvcc.types import (
    Compare,
    CompareResult,
    CompareTarget,
    DeleteRangeRequest,
    PutRequest,
    RangeRequest,
    RequestOp,
    SortOrder,
    SortTarget,
    TxnRequest,
)

__all__ = [
    "MAX_TXN_DEPTH",
    "Op",
    "PayloadError",
    "compare_from_pb",
    "decode_payload",
    "delete_range_from_pb",
    "encode_payload",
    "encode_pb",
    "put_from_pb",
    "range_from_pb",
    "txn_from_pb",
]

# Enums are handed to protobuf by name: the member names of kvorum's enums are etcd's.

#: nested txns deeper than this are refused (upb itself stops near 50 levels of txn).
MAX_TXN_DEPTH = 32


class Op(enum.IntEnum):
    """Op tags. Never renumber: tags are in every WAL ever written."""

    PUT = 1
    DELETE_RANGE = 2
    TXN = 3
    COMPACTION = 4
    LEASE_GRANT = 5
    LEASE_REVOKE = 6
    ALARM = 7
    MEMBER_ATTR_SET = 8
    CLUSTER_VERSION_SET = 9
    # Reserved, not yet implemented: 10 lease checkpoint.
    # --- auth (32-63) ---
    #: u64 auth revision || u16 user name length || user name || the wrapped payload.
    AS_USER = 32
    AUTH_ENABLE = 33
    AUTH_DISABLE = 34
    #: 16 ASCII letters of token prefix || user name (the password never enters the log).
    AUTHENTICATE = 35
    USER_ADD = 36
    USER_DELETE = 37
    USER_CHANGE_PASSWORD = 38
    USER_GRANT_ROLE = 39
    USER_REVOKE_ROLE = 40
    ROLE_ADD = 41
    ROLE_DELETE = 42
    ROLE_GRANT_PERMISSION = 43
    ROLE_REVOKE_PERMISSION = 44


class PayloadError(ValueError):
    """The bytes are not a payload this version understands."""


# --- encoding ------------------------------------------------------------------------------

_PB_TAGS: dict[type[Message], Op] = {
    rpc_pb2.PutRequest: Op.PUT,
    rpc_pb2.DeleteRangeRequest: Op.DELETE_RANGE,
    rpc_pb2.TxnRequest: Op.TXN,
    rpc_pb2.CompactionRequest: Op.COMPACTION,
    rpc_pb2.LeaseGrantRequest: Op.LEASE_GRANT,
    rpc_pb2.LeaseRevokeRequest: Op.LEASE_REVOKE,
    rpc_pb2.AlarmRequest: Op.ALARM,
}


def encode_pb(message: Message) -> bytes:
    """The payload of an etcd protobuf request the API layer already holds."""
    op = _PB_TAGS.get(type(message))
    if op is None:
        raise TypeError(f"{type(message).__name__} is not a request that goes through raft")
    return bytes([op]) + message.SerializeToString()


def encode_payload(req: Request) -> bytes:
    """The payload of a request given as kvorum's dataclasses."""
    if isinstance(req, PutRequest):
        return bytes([Op.PUT]) + _put_pb(req).SerializeToString()
    if isinstance(req, DeleteRangeRequest):
        return bytes([Op.DELETE_RANGE]) + _delete_pb(req).SerializeToString()
    if isinstance(req, TxnRequest):
        return bytes([Op.TXN]) + _txn_pb(req).SerializeToString()
    if isinstance(req, CompactRequest):
        msg: Message = rpc_pb2.CompactionRequest(revision=req.revision, physical=req.physical)
        return bytes([Op.COMPACTION]) + msg.SerializeToString()
    if isinstance(req, LeaseGrantRequest):
        msg = rpc_pb2.LeaseGrantRequest(ID=req.lease_id, TTL=req.ttl_s)
        return bytes([Op.LEASE_GRANT]) + msg.SerializeToString()
    if isinstance(req, LeaseRevokeRequest):
        msg = rpc_pb2.LeaseRevokeRequest(ID=req.lease_id)
        return bytes([Op.LEASE_REVOKE]) + msg.SerializeToString()
    if isinstance(req, AlarmRequest):
        msg = rpc_pb2.AlarmRequest(
            action=req.action.name, memberID=req.member_id, alarm=req.alarm.name
        )
        return bytes([Op.ALARM]) + msg.SerializeToString()
    if isinstance(req, MemberAttrSetRequest):
        msg = rpc_pb2.Member(ID=req.member_id, name=req.name, clientURLs=req.client_urls)
        return bytes([Op.MEMBER_ATTR_SET]) + msg.SerializeToString()
    if isinstance(req, ClusterVersionSetRequest):
        return bytes([Op.CLUSTER_VERSION_SET]) + req.version.encode()
    if isinstance(req, AsUser):
        if isinstance(req.request, AsUser):
            raise TypeError("AsUser cannot wrap AsUser")
        name = req.auth_info.username.encode()
        head = _AS_USER_HEAD.pack(req.auth_info.revision, len(name))
        return bytes([Op.AS_USER]) + head + name + encode_payload(req.request)
    return _encode_auth(req)


# --- auth ----------------------------------------------------------------------------------

_AS_USER_HEAD = struct.Struct(">QH")


def _encode_auth(req: Request) -> bytes:
    if isinstance(req, AuthenticateRequest):
        prefix = req.token_prefix.encode("ascii")
        if len(prefix) != TOKEN_PREFIX_LENGTH:
            raise ValueError(f"token prefix must be {TOKEN_PREFIX_LENGTH} letters")
        return bytes([Op.AUTHENTICATE]) + prefix + req.name.encode()
    op, msg = _auth_pb(req)
    return bytes([op]) + msg.SerializeToString()


def _auth_pb(req: Request) -> tuple[Op, Message]:
    if isinstance(req, AuthEnableRequest):
        return Op.AUTH_ENABLE, rpc_pb2.AuthEnableRequest()
    if isinstance(req, AuthDisableRequest):
        return Op.AUTH_DISABLE, rpc_pb2.AuthDisableRequest()
    if isinstance(req, UserAddRequest):
        return Op.USER_ADD, rpc_pb2.AuthUserAddRequest(
            name=req.name,
            hashedPassword=req.password_hash.decode("ascii"),
            options=auth_pb2.UserAddOptions(no_password=req.no_password),
        )
    if isinstance(req, UserDeleteRequest):
        return Op.USER_DELETE, rpc_pb2.AuthUserDeleteRequest(name=req.name)
    if isinstance(req, UserChangePasswordRequest):
        return Op.USER_CHANGE_PASSWORD, rpc_pb2.AuthUserChangePasswordRequest(
            name=req.name, hashedPassword=req.password_hash.decode("ascii")
        )
    if isinstance(req, UserGrantRoleRequest):
        return Op.USER_GRANT_ROLE, rpc_pb2.AuthUserGrantRoleRequest(user=req.user, role=req.role)
    if isinstance(req, UserRevokeRoleRequest):
        return Op.USER_REVOKE_ROLE, rpc_pb2.AuthUserRevokeRoleRequest(name=req.name, role=req.role)
    if isinstance(req, RoleAddRequest):
        return Op.ROLE_ADD, rpc_pb2.AuthRoleAddRequest(name=req.name)
    if isinstance(req, RoleDeleteRequest):
        return Op.ROLE_DELETE, rpc_pb2.AuthRoleDeleteRequest(role=req.role)
    if isinstance(req, RoleGrantPermissionRequest):
        perm = req.permission
        return Op.ROLE_GRANT_PERMISSION, rpc_pb2.AuthRoleGrantPermissionRequest(
            name=req.name,
            perm=auth_pb2.Permission(
                permType=perm.perm_type.name, key=perm.key, range_end=perm.range_end
            ),
        )
    if isinstance(req, RoleRevokePermissionRequest):
        return Op.ROLE_REVOKE_PERMISSION, rpc_pb2.AuthRoleRevokePermissionRequest(
            role=req.role, key=req.key, range_end=req.range_end
        )
    raise TypeError(f"{type(req).__name__} is not a request that goes through raft")


def _put_pb(r: PutRequest) -> rpc_pb2.PutRequest:
    return rpc_pb2.PutRequest(
        key=r.key,
        value=r.value,
        lease=r.lease,
        prev_kv=r.prev_kv,
        ignore_value=r.ignore_value,
        ignore_lease=r.ignore_lease,
    )


def _delete_pb(r: DeleteRangeRequest) -> rpc_pb2.DeleteRangeRequest:
    return rpc_pb2.DeleteRangeRequest(key=r.key, range_end=r.range_end, prev_kv=r.prev_kv)


def _range_pb(r: RangeRequest) -> rpc_pb2.RangeRequest:
    return rpc_pb2.RangeRequest(
        key=r.key,
        range_end=r.range_end,
        limit=r.limit,
        revision=r.revision,
        sort_order=r.sort_order.name,
        sort_target=r.sort_target.name,
        keys_only=r.keys_only,
        count_only=r.count_only,
        min_mod_revision=r.min_mod_revision,
        max_mod_revision=r.max_mod_revision,
        min_create_revision=r.min_create_revision,
        max_create_revision=r.max_create_revision,
    )


_COMPARE_OPERAND: dict[CompareTarget, Callable[[Compare], tuple[str, Any]]] = {
    CompareTarget.VERSION: lambda c: ("version", c.version),
    CompareTarget.CREATE: lambda c: ("create_revision", c.create_revision),
    CompareTarget.MOD: lambda c: ("mod_revision", c.mod_revision),
    CompareTarget.VALUE: lambda c: ("value", c.value),
    CompareTarget.LEASE: lambda c: ("lease", c.lease),
}


def _compare_pb(c: Compare) -> rpc_pb2.Compare:
    name, operand = _COMPARE_OPERAND[c.target](c)
    return rpc_pb2.Compare(
        result=c.result.name,
        target=c.target.name,
        key=c.key,
        range_end=c.range_end,
        **{name: operand},
    )


def _op_pb(op: RequestOp) -> rpc_pb2.RequestOp:
    if isinstance(op, RangeRequest):
        return rpc_pb2.RequestOp(request_range=_range_pb(op))
    if isinstance(op, PutRequest):
        return rpc_pb2.RequestOp(request_put=_put_pb(op))
    if isinstance(op, DeleteRangeRequest):
        return rpc_pb2.RequestOp(request_delete_range=_delete_pb(op))
    return rpc_pb2.RequestOp(request_txn=_txn_pb(op))


def _txn_pb(r: TxnRequest) -> rpc_pb2.TxnRequest:
    return rpc_pb2.TxnRequest(
        compare=[_compare_pb(c) for c in r.compare],
        success=[_op_pb(op) for op in r.success],
        failure=[_op_pb(op) for op in r.failure],
    )


# --- decoding ------------------------------------------------------------------------------


def decode_payload(data: bytes) -> Request:
    """The request in a payload; raises `PayloadError` for anything but a well-formed one."""
    if not data:
        raise PayloadError("empty payload")
    try:
        op = Op(data[0])
    except ValueError:
        raise PayloadError(f"unknown op tag {data[0]}") from None
    body = data[1:]
    try:
        return _DECODERS[op](body)
    except PayloadError:
        raise
    except (DecodeError, ValueError, RecursionError) as exc:
        raise PayloadError(f"malformed {op.name} payload: {exc}") from None


def _parse(cls: type[Message], body: bytes) -> Any:
    msg = cls()
    msg.ParseFromString(body)
    if len(UnknownFieldSet(msg)):
        raise PayloadError(f"{cls.__name__} payload has fields this version does not know")
    return msg


# The KV requests from their etcdserverpb messages. One implementation for two paths: every
# member decoding a payload here, and the gRPC layer (kvorum/api) converting a client's request
# that `validate` has passed. Unknown enum values raise ValueError (PayloadError through
# decode_payload), so a payload from a newer or broken proposer cannot slip through.


def put_from_pb(r: rpc_pb2.PutRequest) -> PutRequest:
    return PutRequest(r.key, r.value, r.lease, r.prev_kv, r.ignore_value, r.ignore_lease)


def delete_range_from_pb(r: rpc_pb2.DeleteRangeRequest) -> DeleteRangeRequest:
    return DeleteRangeRequest(r.key, r.range_end, r.prev_kv)


def range_from_pb(r: rpc_pb2.RangeRequest) -> RangeRequest:
    return RangeRequest(
        r.key,
        r.range_end,
        r.limit,
        r.revision,
        SortOrder(r.sort_order),
        SortTarget(r.sort_target),
        r.keys_only,
        r.count_only,
        r.min_mod_revision,
        r.max_mod_revision,
        r.min_create_revision,
        r.max_create_revision,
    )


def compare_from_pb(c: rpc_pb2.Compare) -> Compare:
    return Compare(
        c.key,
        CompareTarget(c.target),
        CompareResult(c.result),
        c.range_end,
        c.version,
        c.create_revision,
        c.mod_revision,
        c.value,
        c.lease,
    )


def _op_from_pb(op: rpc_pb2.RequestOp, depth: int) -> RequestOp:
    which = op.WhichOneof("request")
    if which == "request_range":
        return range_from_pb(op.request_range)
    if which == "request_put":
        return put_from_pb(op.request_put)
    if which == "request_delete_range":
        return delete_range_from_pb(op.request_delete_range)
    if which == "request_txn":
        return txn_from_pb(op.request_txn, depth + 1)
    raise PayloadError("txn op with no request")


def txn_from_pb(r: rpc_pb2.TxnRequest, depth: int = 0) -> TxnRequest:
    if depth > MAX_TXN_DEPTH:
        raise PayloadError(f"txn nested deeper than {MAX_TXN_DEPTH}")
    return TxnRequest(
        tuple(compare_from_pb(c) for c in r.compare),
        tuple(_op_from_pb(op, depth) for op in r.success),
        tuple(_op_from_pb(op, depth) for op in r.failure),
    )


def _decode_compaction(body: bytes) -> Request:
    r = _parse(rpc_pb2.CompactionRequest, body)
    return CompactRequest(r.revision, r.physical)


def _decode_alarm(body: bytes) -> Request:
    r = _parse(rpc_pb2.AlarmRequest, body)
    return AlarmRequest(AlarmAction(r.action), r.memberID, AlarmType(r.alarm))


def _decode_attr_set(body: bytes) -> Request:
    r = _parse(rpc_pb2.Member, body)
    return MemberAttrSetRequest(r.ID, r.name, tuple(r.clientURLs))


def _decode_version(body: bytes) -> Request:
    try:
        return ClusterVersionSetRequest(body.decode())
    except UnicodeDecodeError as exc:
        raise PayloadError(f"cluster version is not UTF-8: {exc}") from None


def _decode_as_user(body: bytes) -> Request:
    if len(body) < _AS_USER_HEAD.size:
        raise PayloadError("AS_USER payload too short")
    revision, name_length = _AS_USER_HEAD.unpack_from(body)
    start = _AS_USER_HEAD.size
    name = body[start : start + name_length]
    if len(name) != name_length:
        raise PayloadError("AS_USER user name cut short")
    inner = body[start + name_length :]
    if inner[:1] == bytes([Op.AS_USER]):
        raise PayloadError("AS_USER payload wraps another AS_USER")
    return AsUser(AuthInfo(name.decode(), revision), decode_payload(inner))


def _decode_authenticate(body: bytes) -> Request:
    prefix = body[:TOKEN_PREFIX_LENGTH].decode("ascii")
    if len(prefix) != TOKEN_PREFIX_LENGTH or not prefix.isalpha():
        raise PayloadError("AUTHENTICATE payload has no valid token prefix")
    return AuthenticateRequest(body[TOKEN_PREFIX_LENGTH:].decode(), prefix)


def _decode_user_add(body: bytes) -> Request:
    r = _parse(rpc_pb2.AuthUserAddRequest, body)
    return UserAddRequest(r.name, r.hashedPassword.encode("ascii"), r.options.no_password)


def _decode_change_password(body: bytes) -> Request:
    r = _parse(rpc_pb2.AuthUserChangePasswordRequest, body)
    return UserChangePasswordRequest(r.name, r.hashedPassword.encode("ascii"))


def _decode_grant_permission(body: bytes) -> Request:
    r = _parse(rpc_pb2.AuthRoleGrantPermissionRequest, body)
    perm = Permission(PermType(r.perm.permType), r.perm.key, r.perm.range_end)
    return RoleGrantPermissionRequest(r.name, perm)


def _decode_revoke_permission(body: bytes) -> Request:
    r = _parse(rpc_pb2.AuthRoleRevokePermissionRequest, body)
    return RoleRevokePermissionRequest(r.role, r.key, r.range_end)


_DECODERS: dict[Op, Callable[[bytes], Request]] = {
    Op.PUT: lambda b: put_from_pb(_parse(rpc_pb2.PutRequest, b)),
    Op.DELETE_RANGE: lambda b: delete_range_from_pb(_parse(rpc_pb2.DeleteRangeRequest, b)),
    Op.TXN: lambda b: txn_from_pb(_parse(rpc_pb2.TxnRequest, b)),
    Op.COMPACTION: _decode_compaction,
    Op.LEASE_GRANT: lambda b: LeaseGrantRequest(
        _parse(rpc_pb2.LeaseGrantRequest, b).ID, _parse(rpc_pb2.LeaseGrantRequest, b).TTL
    ),
    Op.LEASE_REVOKE: lambda b: LeaseRevokeRequest(_parse(rpc_pb2.LeaseRevokeRequest, b).ID),
    Op.ALARM: _decode_alarm,
    Op.MEMBER_ATTR_SET: _decode_attr_set,
    Op.CLUSTER_VERSION_SET: _decode_version,
    Op.AS_USER: _decode_as_user,
    Op.AUTH_ENABLE: lambda b: (_parse(rpc_pb2.AuthEnableRequest, b), AuthEnableRequest())[1],
    Op.AUTH_DISABLE: lambda b: (_parse(rpc_pb2.AuthDisableRequest, b), AuthDisableRequest())[1],
    Op.AUTHENTICATE: _decode_authenticate,
    Op.USER_ADD: _decode_user_add,
    Op.USER_DELETE: lambda b: UserDeleteRequest(_parse(rpc_pb2.AuthUserDeleteRequest, b).name),
    Op.USER_CHANGE_PASSWORD: _decode_change_password,
    Op.USER_GRANT_ROLE: lambda b: UserGrantRoleRequest(
        _parse(rpc_pb2.AuthUserGrantRoleRequest, b).user,
        _parse(rpc_pb2.AuthUserGrantRoleRequest, b).role,
    ),
    Op.USER_REVOKE_ROLE: lambda b: UserRevokeRoleRequest(
        _parse(rpc_pb2.AuthUserRevokeRoleRequest, b).name,
        _parse(rpc_pb2.AuthUserRevokeRoleRequest, b).role,
    ),
    Op.ROLE_ADD: lambda b: RoleAddRequest(_parse(rpc_pb2.AuthRoleAddRequest, b).name),
    Op.ROLE_DELETE: lambda b: RoleDeleteRequest(_parse(rpc_pb2.AuthRoleDeleteRequest, b).role),
    Op.ROLE_GRANT_PERMISSION: _decode_grant_permission,
    Op.ROLE_REVOKE_PERMISSION: _decode_revoke_permission,
}
