"""KV, txn, compaction and error mapping against a real 1-member server."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from kvorum.api.pb.etcdserverpb import rpc_pb2
from kvorum.client import (
    AsyncClient,
    CompactedError,
    DeleteResult,
    DuplicateKeyError,
    FutureRevisionError,
    GetResult,
    KeyNotProvidedError,
    LeaseNotFoundError,
    PutResult,
    TooManyOpsError,
)
from kvorum.testing import Cluster


def test_put_get_delete_with_prev_kv_and_ranges(
    cluster1: Cluster, arun: Callable[..., Any]
) -> None:
    async def body() -> None:
        async with AsyncClient(cluster1.endpoints) as c:
            first = await c.put("kv/a", b"1")
            again = await c.put("kv/a", "2", prev_kv=True)
            assert again.header.revision == first.header.revision + 1
            assert again.prev_kv is not None and again.prev_kv.value == b"1"
            await c.put("kv/b", b"3")
            await c.put("kv/c", b"4")

            got = await c.get("kv/a")
            assert got.value == b"2"
            kv = got.kvs[0]
            assert (kv.version, kv.create_revision, kv.mod_revision) == (
                2,
                first.header.revision,
                again.header.revision,
            )
            assert (await c.get("kv/a", revision=first.header.revision)).value == b"1"

            everything = await c.get("kv/", prefix=True)
            assert [kv.key for kv in everything.kvs] == [b"kv/a", b"kv/b", b"kv/c"]
            limited = await c.get("kv/", prefix=True, limit=2, sort_order="descend")
            assert ([kv.key for kv in limited.kvs], limited.count, limited.more) == (
                [b"kv/c", b"kv/b"],
                3,
                True,
            )
            counted = await c.get("kv/", prefix=True, count_only=True)
            assert (counted.kvs, counted.count) == ((), 3)
            keys = await c.get("kv/a", range_end="kv/c", keys_only=True, serializable=True)
            assert [(kv.key, kv.value) for kv in keys.kvs] == [(b"kv/a", b""), (b"kv/b", b"")]
            newer = await c.get("kv/", prefix=True, min_mod_revision=again.header.revision + 1)
            assert [kv.key for kv in newer.kvs] == [b"kv/b", b"kv/c"]

            deleted = await c.delete("kv/", prefix=True, prev_kv=True)
            assert deleted.deleted == 3
            assert sorted(kv.value for kv in deleted.prev_kvs) == [b"2", b"3", b"4"]
            assert (await c.get("kv/", prefix=True)).count == 0

    arun(body())


def test_txn_reads_like_its_condition(cluster1: Cluster, arun: Callable[..., Any]) -> None:
    async def body() -> None:
        async with AsyncClient(cluster1.endpoints) as c:
            await c.put("txn/k", b"v")
            won = (
                await c.txn()
                .if_(c.value("txn/k") == b"v", c.version("txn/k") > 0)
                .then(c.put_op("txn/k", b"w"), c.get_op("txn/k"))
                .else_(c.get_op("txn/k"))
                .commit()
            )
            assert won.succeeded
            put, get = won.responses
            assert isinstance(put, PutResult) and isinstance(get, GetResult)
            assert get.value == b"w"

            lost = (
                await c.txn()
                .if_(c.value("txn/k") == b"v")
                .then(c.delete_op("txn/k"))
                .else_(c.get_op("txn/k"))
                .commit()
            )
            assert not lost.succeeded
            (only,) = lost.responses
            assert isinstance(only, GetResult) and only.value == b"w"

            absent = (
                await c.txn()
                .if_(c.create_revision("txn/new") == 0)
                .then(c.put_op("txn/new", b"1"), c.delete_op("txn/k"))
                .commit()
            )
            assert absent.succeeded and isinstance(absent.responses[1], DeleteResult)
            assert (await c.get("txn/k")).count == 0

    arun(body())


def test_etcd_errors_arrive_as_named_exceptions(
    cluster1: Cluster, arun: Callable[..., Any]
) -> None:
    async def body() -> None:
        async with AsyncClient(cluster1.endpoints) as c:
            with pytest.raises(KeyNotProvidedError) as empty:
                await c.put("", b"x")
            assert empty.value.code == "INVALID_ARGUMENT"
            with pytest.raises(DuplicateKeyError):
                await c.txn().then(c.put_op("dup", b"1"), c.put_op("dup", b"2")).commit()
            with pytest.raises(LeaseNotFoundError):
                await c.put("err/k", b"x", lease=0x1234)
            head = (await c.get("err/k")).header.revision
            with pytest.raises(FutureRevisionError):
                await c.get("err/k", revision=head + 1000)
            # 129 ops is over etcd's --max-txn-ops; the request is built raw to reach the server.
            ops = [c.put_op(f"err/{i}", b"") for i in range(129)]
            with pytest.raises(TooManyOpsError):
                await c.submit_txn(rpc_pb2.TxnRequest(success=ops))

    arun(body())


def test_compaction_makes_old_revisions_unreadable(
    cluster1: Cluster, arun: Callable[..., Any]
) -> None:
    async def body() -> None:
        async with AsyncClient(cluster1.endpoints) as c:
            old = (await c.put("cmp/k", b"1")).header.revision
            new = (await c.put("cmp/k", b"2")).header.revision
            await c.compact(new, physical=True)
            with pytest.raises(CompactedError):
                await c.get("cmp/k", revision=old)
            assert (await c.get("cmp/k", revision=new)).value == b"2"

    arun(body())
