"""etcd 3.4's request checks (v3rpc key.go), table-driven, with etcd's codes and texts."""

from __future__ import annotations

import grpc
import pytest

from kvorum.api import validate
from kvorum.api.errors import (
    ApiError,
    EmptyKeyError,
    EmptyRequestOpError,
    InvalidCompareError,
    InvalidSortOptionError,
    LeaseProvidedError,
    RequestTooLargeError,
    TooManyOpsError,
    ValueProvidedError,
    status_of,
)
from kvorum.api.pb.etcdserverpb import rpc_pb2
from kvorum.apply import payload
from kvorum.mvcc import DuplicateKeyError

LIMITS = validate.Limits()
INVALID = grpc.StatusCode.INVALID_ARGUMENT


def put_op(key: bytes, **kw: object) -> rpc_pb2.RequestOp:
    return rpc_pb2.RequestOp(request_put=rpc_pb2.PutRequest(key=key, **kw))  # type: ignore[arg-type]


def range_op(key: bytes, **kw: object) -> rpc_pb2.RequestOp:
    return rpc_pb2.RequestOp(request_range=rpc_pb2.RangeRequest(key=key, **kw))  # type: ignore[arg-type]


def del_op(key: bytes, end: bytes = b"") -> rpc_pb2.RequestOp:
    return rpc_pb2.RequestOp(
        request_delete_range=rpc_pb2.DeleteRangeRequest(key=key, range_end=end)
    )


def txn_op(txn: rpc_pb2.TxnRequest) -> rpc_pb2.RequestOp:
    return rpc_pb2.RequestOp(request_txn=txn)


def cmp(key: bytes) -> rpc_pb2.Compare:
    return rpc_pb2.Compare(key=key, target=rpc_pb2.Compare.VERSION, version=0)


def check_txn(req: rpc_pb2.TxnRequest, limits: validate.Limits = LIMITS) -> None:
    validate.check_txn_fields(req, limits)
    validate.check_txn(req, payload.txn_from_pb(req), limits)


MIB = 1024 * 1024
# (name, call, expected error class or None, etcd's text)
CASES: list[tuple[str, object, type[Exception] | None, str]] = [
    ("range ok", lambda: validate.check_range(rpc_pb2.RangeRequest(key=b"a")), None, ""),
    (
        "range empty key",
        lambda: validate.check_range(rpc_pb2.RangeRequest(range_end=b"z")),
        EmptyKeyError,
        "etcdserver: key is not provided",
    ),
    (
        "range unknown sort order",
        lambda: validate.check_range(rpc_pb2.RangeRequest(key=b"a", sort_order=7)),  # type: ignore[arg-type]
        InvalidSortOptionError,
        "etcdserver: invalid sort option",
    ),
    (
        "range unknown sort target",
        lambda: validate.check_range(rpc_pb2.RangeRequest(key=b"a", sort_target=9)),  # type: ignore[arg-type]
        InvalidSortOptionError,
        "etcdserver: invalid sort option",
    ),
    (
        "put empty key",
        lambda: validate.check_put(rpc_pb2.PutRequest(value=b"v"), LIMITS),
        EmptyKeyError,
        "etcdserver: key is not provided",
    ),
    (
        "put ignore_value with a value",
        lambda: validate.check_put(
            rpc_pb2.PutRequest(key=b"k", value=b"v", ignore_value=True), LIMITS
        ),
        ValueProvidedError,
        "etcdserver: value is provided",
    ),
    (
        "put ignore_value without a value",
        lambda: validate.check_put(rpc_pb2.PutRequest(key=b"k", ignore_value=True), LIMITS),
        None,
        "",
    ),
    (
        "put ignore_lease with a lease",
        lambda: validate.check_put(
            rpc_pb2.PutRequest(key=b"k", lease=5, ignore_lease=True), LIMITS
        ),
        LeaseProvidedError,
        "etcdserver: lease is provided",
    ),
    (
        "put 1.5 MB value fits 1.5 MiB",
        lambda: validate.check_put(rpc_pb2.PutRequest(key=b"k", value=b"x" * 1_500_000), LIMITS),
        None,
        "",
    ),
    (
        "put 1.6 MB value is too large",
        lambda: validate.check_put(rpc_pb2.PutRequest(key=b"k", value=b"x" * 1_600_000), LIMITS),
        RequestTooLargeError,
        "etcdserver: request is too large",
    ),
    (
        "delete empty key",
        lambda: validate.check_delete_range(rpc_pb2.DeleteRangeRequest(), LIMITS),
        EmptyKeyError,
        "etcdserver: key is not provided",
    ),
    (
        "txn 128 puts",
        lambda: check_txn(rpc_pb2.TxnRequest(success=[put_op(b"k%d" % i) for i in range(128)])),
        None,
        "",
    ),
    (
        "txn 129 puts",
        lambda: check_txn(rpc_pb2.TxnRequest(success=[put_op(b"k%d" % i) for i in range(129)])),
        TooManyOpsError,
        "etcdserver: too many operations in txn request",
    ),
    (
        "txn 129 compares",
        lambda: check_txn(rpc_pb2.TxnRequest(compare=[cmp(b"k%d" % i) for i in range(129)])),
        TooManyOpsError,
        "etcdserver: too many operations in txn request",
    ),
    (
        "txn 129 failure ops",
        lambda: check_txn(rpc_pb2.TxnRequest(failure=[range_op(b"k")] * 129)),
        TooManyOpsError,
        "etcdserver: too many operations in txn request",
    ),
    (
        "nested txn counts against what its parent left",
        lambda: check_txn(
            rpc_pb2.TxnRequest(
                success=[
                    *[range_op(b"r")] * 100,
                    txn_op(rpc_pb2.TxnRequest(success=[range_op(b"n")] * 29)),
                ]
            )
        ),
        TooManyOpsError,
        "etcdserver: too many operations in txn request",
    ),
    (
        "nested txn within the budget",
        lambda: check_txn(
            rpc_pb2.TxnRequest(
                success=[
                    *[range_op(b"r")] * 100,
                    txn_op(rpc_pb2.TxnRequest(success=[range_op(b"n")] * 27)),
                ]
            )
        ),
        None,
        "",
    ),
    (
        "txn compare without key",
        lambda: check_txn(rpc_pb2.TxnRequest(compare=[cmp(b"")])),
        EmptyKeyError,
        "etcdserver: key is not provided",
    ),
    (
        "txn compare with unknown result",
        lambda: check_txn(rpc_pb2.TxnRequest(compare=[rpc_pb2.Compare(key=b"k", result=9)])),  # type: ignore[arg-type]
        InvalidCompareError,
        "etcdserver: kvorum: invalid compare result or target",
    ),
    (
        "txn op with empty key",
        lambda: check_txn(rpc_pb2.TxnRequest(failure=[del_op(b"")])),
        EmptyKeyError,
        "etcdserver: key is not provided",
    ),
    (
        "txn put op with ignore_lease and lease",
        lambda: check_txn(rpc_pb2.TxnRequest(success=[put_op(b"k", lease=1, ignore_lease=True)])),
        LeaseProvidedError,
        "etcdserver: lease is provided",
    ),
    (
        "txn empty op",
        lambda: check_txn(rpc_pb2.TxnRequest(success=[rpc_pb2.RequestOp()])),
        EmptyRequestOpError,
        "etcdserver: key not found",
    ),
    (
        "txn same key put twice",
        lambda: check_txn(rpc_pb2.TxnRequest(success=[put_op(b"k"), put_op(b"k")])),
        DuplicateKeyError,
        "etcdserver: duplicate key given in txn request",
    ),
    (
        "txn put inside a deleted range",
        lambda: check_txn(rpc_pb2.TxnRequest(failure=[del_op(b"a", b"c"), put_op(b"b")])),
        DuplicateKeyError,
        "etcdserver: duplicate key given in txn request",
    ),
    (
        "txn same key in both branches",
        lambda: check_txn(rpc_pb2.TxnRequest(success=[put_op(b"k")], failure=[put_op(b"k")])),
        None,
        "",
    ),
    (
        "read-only txn is not measured (never proposed)",
        lambda: check_txn(
            rpc_pb2.TxnRequest(success=[range_op(b"k" * 1000)] * 100),
            validate.Limits(max_request_bytes=1000),
        ),
        None,
        "",
    ),
    (
        "writing txn is measured",
        lambda: check_txn(
            rpc_pb2.TxnRequest(success=[put_op(b"k", value=b"v" * 2 * MIB)]),
        ),
        RequestTooLargeError,
        "etcdserver: request is too large",
    ),
]


@pytest.mark.parametrize(("name", "call", "error", "text"), CASES, ids=[c[0] for c in CASES])
def test_check(name: str, call: object, error: type[Exception] | None, text: str) -> None:
    assert callable(call)
    if error is None:
        call()
        return
    with pytest.raises(error) as info:
        call()
    spec = status_of(info.value)
    assert spec is not None
    assert (spec.code, spec.text) == (INVALID, text)
    assert str(info.value) == text or not isinstance(info.value, ApiError)


def test_too_many_ops_is_checked_before_duplicates() -> None:
    """etcd counts ops first, so a huge txn is refused without walking its keys."""
    req = rpc_pb2.TxnRequest(success=[put_op(b"same")] * 200)
    with pytest.raises(TooManyOpsError):
        check_txn(req)


def test_max_txn_ops_follows_the_flag() -> None:
    req = rpc_pb2.TxnRequest(success=[put_op(b"k%d" % i) for i in range(3)])
    check_txn(req, validate.Limits(max_txn_ops=3))
    with pytest.raises(TooManyOpsError):
        check_txn(req, validate.Limits(max_txn_ops=2))


def test_internal_size_matches_etcds_wrapping() -> None:
    """The internal request is the request plus a tag, its length and the id header."""
    assert validate.internal_size_bytes(0) == validate.INTERNAL_HEADER_BYTES + 1 + 1
    assert validate.internal_size_bytes(127) == validate.INTERNAL_HEADER_BYTES + 1 + 1 + 127
    assert validate.internal_size_bytes(128) == validate.INTERNAL_HEADER_BYTES + 1 + 2 + 128
    # The edge: a put whose wrapped size is exactly the limit passes, one byte more fails.
    limits = validate.Limits(max_request_bytes=1000)
    for size in range(900, 1000):
        req = rpc_pb2.PutRequest(key=b"k", value=b"v" * size)
        wrapped = validate.internal_size_bytes(req.ByteSize())
        if wrapped <= 1000:
            validate.check_put(req, limits)
        else:
            with pytest.raises(RequestTooLargeError):
                validate.check_put(req, limits)


def test_txn_readonly_and_serializable() -> None:
    ro = rpc_pb2.TxnRequest(success=[range_op(b"a", serializable=True)])
    assert validate.is_txn_readonly(ro)
    assert validate.is_txn_serializable(ro)
    linear = rpc_pb2.TxnRequest(success=[range_op(b"a")], failure=[range_op(b"b")])
    assert validate.is_txn_readonly(linear)
    assert not validate.is_txn_serializable(linear)
    nested = rpc_pb2.TxnRequest(success=[txn_op(ro)])
    assert not validate.is_txn_readonly(nested)  # etcd's rule looks at the top level only
    assert not validate.is_txn_serializable(nested)
    assert not validate.is_txn_readonly(rpc_pb2.TxnRequest(failure=[put_op(b"k")]))
