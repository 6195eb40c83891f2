"""The txn builder produces exactly the TxnRequest its expression reads as."""

from __future__ import annotations

import pytest

from kvorum.api.pb.etcdserverpb import rpc_pb2
from kvorum.client import txn as t
from kvorum.client.aio import _is_read_only

C = rpc_pb2.Compare


def build() -> t.Txn[rpc_pb2.TxnRequest]:
    # The submit function returns the request itself, so commit() shows what would be sent.
    return t.Txn(lambda request: request)


def test_value_equal_and_version_greater_become_compares() -> None:
    request = (
        build()
        .if_(t.value("k") == b"v", t.version("k") > 0)
        .then(t.put_op("k", b"w"))
        .else_(t.get_op("k"))
        .commit()
    )
    assert list(request.compare) == [
        C(result=C.EQUAL, target=C.VALUE, key=b"k", value=b"v"),
        C(result=C.GREATER, target=C.VERSION, key=b"k", version=0),
    ]
    assert request.success[0].request_put == rpc_pb2.PutRequest(key=b"k", value=b"w")
    assert request.failure[0].request_range == rpc_pb2.RangeRequest(key=b"k")


@pytest.mark.parametrize(
    ("compare", "result", "target", "field", "operand"),
    [
        (t.mod_revision("k") < 7, C.LESS, C.MOD, "mod_revision", 7),
        (t.create_revision("k") == 0, C.EQUAL, C.CREATE, "create_revision", 0),
        (t.lease("k") != 5, C.NOT_EQUAL, C.LEASE, "lease", 5),
        (t.value("k") != "x", C.NOT_EQUAL, C.VALUE, "value", b"x"),
    ],
)
def test_each_target_sets_its_own_field(
    compare: rpc_pb2.Compare, result: int, target: int, field: str, operand: object
) -> None:
    assert compare.result == result
    assert compare.target == target
    assert getattr(compare, field) == operand


def test_prefix_compare_carries_range_end() -> None:
    assert (t.version("a/", prefix=True) > 0).range_end == b"a0"


def test_operand_types_are_checked() -> None:
    with pytest.raises(TypeError):
        t.value("k") == 1  # noqa: B015
    with pytest.raises(TypeError):
        t.version("k") > b"1"  # noqa: B015


def test_parts_are_given_once_and_must_be_compares_or_ops() -> None:
    txn = build().if_(t.value("k") == b"v")
    with pytest.raises(ValueError, match="twice"):
        txn.if_(t.value("k") == b"v")
    with pytest.raises(TypeError):
        build().then(t.value("k") == b"v")  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        build().if_(True)  # type: ignore[arg-type]


def test_too_many_ops_are_refused_before_sending() -> None:
    ops = [t.put_op(f"k{i}", b"") for i in range(t.MAX_TXN_OPS + 1)]
    with pytest.raises(ValueError, match="more than 128"):
        build().then(*ops).commit()
    assert len(build().then(*ops[:-1]).commit().success) == t.MAX_TXN_OPS


def test_nested_txn_and_delete_ops() -> None:
    inner = build().if_(t.version("a") == 0).then(t.put_op("a", b"1"))
    request = build().then(t.txn_op(inner), t.delete_op("p/", prefix=True, prev_kv=True)).commit()
    assert request.success[0].request_txn.success[0].request_put.key == b"a"
    assert request.success[1].request_delete_range == rpc_pb2.DeleteRangeRequest(
        key=b"p/", range_end=b"p0", prev_kv=True
    )


@pytest.mark.parametrize(
    ("prefix", "end"),
    [(b"a", b"b"), (b"a\xff", b"b"), (b"\xff\xff", b"\0"), (b"", b"\0"), (b"ab\x01", b"ab\x02")],
)
def test_prefix_end(prefix: bytes, end: bytes) -> None:
    assert t.prefix_end(prefix) == end


def test_range_request_options() -> None:
    r = t.range_request(
        "k", range_end="z", sort_order="descend", sort_target="mod", limit=3, min_mod_revision=2
    )
    assert (r.range_end, r.sort_order, r.sort_target, r.limit, r.min_mod_revision) == (
        b"z",
        rpc_pb2.RangeRequest.DESCEND,
        rpc_pb2.RangeRequest.MOD,
        3,
        2,
    )
    with pytest.raises(ValueError):
        t.range_request("k", prefix=True, range_end="z")
    with pytest.raises(ValueError, match="sort"):
        t.range_request("k", sort_order="sideways")


def test_only_all_read_txns_are_idempotent() -> None:
    reads = build().then(t.get_op("a")).else_(t.get_op("b")).commit()
    assert _is_read_only(reads)
    nested_write = build().then(t.txn_op(build().then(t.put_op("a", b"")))).commit()
    assert not _is_read_only(nested_write)
    assert not _is_read_only(build().else_(t.delete_op("a")).commit())
