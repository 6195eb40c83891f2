"""Which ranges a KV request touches, and the check of all of them against the auth store."""

from __future__ import annotations

import pytest

from kvorum.api.auth import watch_cancel_reason
from kvorum.auth import (
    AuthFailedError,
    AuthInfo,
    AuthStore,
    InvalidAuthTokenError,
    Permission,
    PermissionDeniedError,
    PermType,
    UserEmptyError,
)
from kvorum.auth.check import check_needs, needs_of, revoke_needs
from kvorum.mvcc import (
    Compare,
    CompareResult,
    CompareTarget,
    DeleteRangeRequest,
    PutRequest,
    RangeRequest,
    TxnRequest,
)


def lease_keys(lease_id: int) -> tuple[bytes, ...]:
    return {7: (b"/l/1", b"/l/2")}.get(lease_id, ())


def test_needs_of_each_request() -> None:
    assert list(needs_of(RangeRequest(b"a", b"b"), lease_keys)) == [(b"a", b"b", False)]
    assert list(needs_of(PutRequest(b"k", lease=7, prev_kv=True), lease_keys)) == [
        (b"k", b"", True),
        (b"/l/1", b"", True),
        (b"/l/2", b"", True),
        (b"k", b"", False),
    ]
    assert list(needs_of(DeleteRangeRequest(b"a", b"c", prev_kv=True), lease_keys)) == [
        (b"a", b"c", False),
        (b"a", b"c", True),
    ]
    nested = TxnRequest(
        compare=(Compare(b"c", CompareTarget.VALUE, CompareResult.EQUAL, b"d"),),
        success=(TxnRequest(success=(PutRequest(b"deep"),)),),
        failure=(RangeRequest(b"f"),),
    )
    assert list(needs_of(nested, lease_keys)) == [
        (b"c", b"d", False),
        (b"deep", b"", True),  # etcd 3.4 never looks inside a nested txn
        (b"f", b"", False),
    ]
    assert list(revoke_needs(7, lease_keys)) == [(b"/l/1", b"", True), (b"/l/2", b"", True)]
    assert list(revoke_needs(8, lease_keys)) == []


def test_check_needs_stops_at_the_first_range_missing() -> None:
    store = AuthStore()
    store.user_add("root", b"h")
    store.user_grant_role("root", "root")
    store.user_add("alice", b"h")
    store.role_add("r")
    store.role_grant_permission("r", Permission(PermType.READWRITE, b"/a/", b"/a0"))
    store.user_grant_role("alice", "r")
    check_needs(store, None, [(b"x", b"", True)])  # auth off: anything goes
    store.auth_enable()
    alice = AuthInfo("alice", store.revision)
    check_needs(store, alice, needs_of(PutRequest(b"/a/k", prev_kv=True), lease_keys))
    check_needs(store, None, [])  # nothing touched: nothing to refuse (etcd: no user needed)
    with pytest.raises(PermissionDeniedError):
        check_needs(store, alice, needs_of(PutRequest(b"/a/k", lease=7), lease_keys))
    with pytest.raises(UserEmptyError):
        check_needs(store, None, [(b"/a/k", b"", False)])


def test_watch_cancel_reason_is_the_go_error_string() -> None:
    assert watch_cancel_reason(UserEmptyError()) == (
        "rpc error: code = InvalidArgument desc = etcdserver: user name is empty"
    )
    assert watch_cancel_reason(InvalidAuthTokenError()) == (
        "rpc error: code = Unauthenticated desc = etcdserver: invalid auth token"
    )
    assert watch_cancel_reason(AuthFailedError()) == (
        "rpc error: code = PermissionDenied desc = etcdserver: permission denied"
    )
