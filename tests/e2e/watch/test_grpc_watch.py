"""The Watch RPC on the wire: kvorum answers as etcd 3.4 does, and a watcher on a follower
gets every event of concurrent writers once, in order.

The protocol test drives the same requests, one at a time, against a fresh etcd and a fresh
kvorum and compares the answers field by field (the header's ids differ by nature; its
revision is compared on created and cancel answers, where kvorum promises etcd's).
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import grpc
import pytest

from kvorum.api.pb.etcdserverpb import rpc_pb2, rpc_pb2_grpc
from kvorum.testing import ETCD, Cluster, binary_for
from tests.e2e.watch.helpers import GrpcWatch

LONG = os.environ.get("KVORUM_LONG") == "1"


@pytest.fixture
def pair(tmp_path: Path, etcd_installed: None) -> Iterator[tuple[Cluster, Cluster]]:
    etcd = Cluster(ETCD, 1, base_dir=tmp_path / "etcd")
    kvorum = Cluster(binary_for("kvorum"), 1, base_dir=tmp_path / "kvorum")
    try:
        with ThreadPoolExecutor(max_workers=2) as pool:
            for started in [pool.submit(etcd.start), pool.submit(kvorum.start)]:
                started.result()
        yield etcd, kvorum
    finally:
        etcd.stop()
        kvorum.stop()


def _shape(r: rpc_pb2.WatchResponse) -> tuple[Any, ...]:
    events = tuple(
        (
            e.type,
            e.kv.key,
            e.kv.value,
            e.kv.create_revision,
            e.kv.mod_revision,
            e.kv.version,
            e.HasField("prev_kv") and (e.prev_kv.value, e.prev_kv.mod_revision),
        )
        for e in r.events
    )
    control = r.created or r.canceled  # a compaction cancel's header has no revision
    return (
        r.watch_id,
        r.created,
        r.canceled,
        r.compact_revision,
        r.cancel_reason,
        r.fragment,
        r.header.revision if control else None,
        events,
    )


def _count_events(responses: list[rpc_pb2.WatchResponse]) -> int:
    return sum(len(r.events) for r in responses)


def _script(cluster: Cluster) -> list[list[tuple[Any, ...]]]:
    """The scripted session; the shaped answers of each step."""
    kv: Any = cluster.member(0).kv_stub()
    for value in (b"1", b"2", b"3"):
        kv.Put(rpc_pb2.PutRequest(key=b"a", value=value))  # revisions 2, 3, 4
    kv.Compact(rpc_pb2.CompactionRequest(revision=3, physical=True))
    w = GrpcWatch(cluster.member(0).spec.client_address)
    steps: list[list[rpc_pb2.WatchResponse]] = []
    try:
        # Below the compact revision: created, then canceled with compact_revision.
        w.create(b"a", start_revision=2)
        steps.append(w.take_until(lambda got: len(got) == 2))
        # At the compact revision: accepted (etcd 3.4 cancels only below it).
        w.create(b"a", start_revision=3, prev_kv=True)
        steps.append(w.take_until(lambda got: _count_events(got) == 2))
        # An empty range is refused in a created+canceled answer with etcd's reason.
        w.create(b"b", range_end=b"a")
        steps.append(w.take_until(lambda got: len(got) == 1))
        # A chosen id, then the same id again.
        w.create(b"c", range_end=b"d", watch_id=7, filters=[rpc_pb2.WatchCreateRequest.NOPUT])
        steps.append(w.take_until(lambda got: len(got) == 1))
        w.create(b"c", watch_id=7)
        steps.append(w.take_until(lambda got: len(got) == 1))
        # Live events, filtered: watch 7 takes deletes only.
        kv.Put(rpc_pb2.PutRequest(key=b"c1", value=b"x"))
        kv.Put(rpc_pb2.PutRequest(key=b"a", value=b"4"))
        kv.DeleteRange(rpc_pb2.DeleteRangeRequest(key=b"c1"))
        steps.append(w.take_until(lambda got: _count_events(got) == 2))
        # Cancel answers, including one for an id that is not there (no answer at all).
        w.cancel(1)
        w.cancel(99)
        w.cancel(7)
        steps.append(w.take_until(lambda got: len(got) == 2))
        # A requested progress answer.
        w.send(rpc_pb2.WatchRequest(progress_request=rpc_pb2.WatchProgressRequest()))
        steps.append(w.take_until(lambda got: len(got) == 1))
    finally:
        w.close()
    return [[_shape(r) for r in step] for step in steps]


def test_watch_answers_equal_etcds(pair: tuple[Cluster, Cluster]) -> None:
    etcd, kvorum = pair
    want = _script(etcd)
    got = _script(kvorum)
    # The compacted cancel carries etcd's compact revision, canceled, no reason.
    assert want[0][1][1:5] == (False, True, 3, "")
    for number, (w, g) in enumerate(zip(want, got, strict=True)):
        assert g == w, f"step {number}"


def test_watch_on_follower_sees_every_event_once_in_order(tmp_path: Path) -> None:
    writers, puts_each = (4, 300) if LONG else (3, 60)
    with Cluster(binary_for("kvorum"), 3, base_dir=tmp_path) as cluster:
        leader = cluster.wait_for_leader()
        follower = next(m for m in cluster.members if m.index != leader)
        head = cluster.member(leader).kv_stub().Range(rpc_pb2.RangeRequest(key=b"w/"))
        start = head.header.revision + 1
        w = GrpcWatch(follower.spec.client_address)
        written: dict[int, tuple[bytes, bytes]] = {}
        lock = threading.Lock()

        def write(n: int) -> None:
            with grpc.insecure_channel(cluster.member(leader).spec.client_address) as channel:
                kv: Any = rpc_pb2_grpc.KVStub(channel)  # type: ignore[no-untyped-call]
                for i in range(puts_each):
                    key, value = f"w/{n}/{i % 7}".encode(), f"{n}-{i}".encode()
                    if i % 10 == 9:
                        resp = kv.DeleteRange(rpc_pb2.DeleteRangeRequest(key=key))
                        value = b""
                        if not resp.deleted:
                            continue  # nothing deleted: no revision, no event
                    else:
                        resp = kv.Put(rpc_pb2.PutRequest(key=key, value=value))
                    with lock:
                        written[resp.header.revision] = (key, value)

        try:
            w.create(b"w/", range_end=b"w0", start_revision=start)
            assert w.take().created
            threads = [threading.Thread(target=write, args=(n,)) for n in range(writers)]
            for t in threads:
                t.start()
            for t in threads:
                t.join(60)
            last = max(written)
            responses = w.take_until(
                lambda got: any(e.kv.mod_revision == last for r in got for e in r.events),
                timeout_s=30,
            )
        finally:
            w.close()
    seen = [(e.kv.mod_revision, e.kv.key, e.kv.value) for r in responses for e in r.events]
    assert not any(r.canceled for r in responses)
    assert [rev for rev, _, _ in seen] == sorted(written), "lost, repeated or out of order"
    assert {rev: (k, v) for rev, k, v in seen} == written


def test_a_stalled_client_blocks_neither_writers_nor_other_watchers(tmp_path: Path) -> None:
    """One stream never reads (gRPC flow control stops its sends within a few hundred KiB);
    writes of several MiB still complete and another stream still gets every event."""
    value = b"v" * (256 << 10)
    count = 80  # 20 MiB of values: past every gRPC window and the hub's 16 MiB stream buffer
    with Cluster(binary_for("kvorum"), 1, base_dir=tmp_path) as cluster:
        address = cluster.member(0).spec.client_address
        stalled_channel = grpc.insecure_channel(address)
        stub: Any = rpc_pb2_grpc.WatchStub(stalled_channel)  # type: ignore[no-untyped-call]
        create = rpc_pb2.WatchRequest(create_request=rpc_pb2.WatchCreateRequest(key=b"s/"))
        create.create_request.range_end = b"s0"
        stalled = stub.Watch(iter([create]))  # its responses are never taken
        reader = GrpcWatch(address)
        try:
            reader.create(b"s/", range_end=b"s0")
            assert reader.take().created
            kv: Any = cluster.member(0).kv_stub()
            revisions = [
                kv.Put(
                    rpc_pb2.PutRequest(key=f"s/{i}".encode(), value=value), timeout=10
                ).header.revision
                for i in range(count)
            ]
            got = reader.take_until(lambda rs: _count_events(rs) == count, timeout_s=30)
            # Now the stalled client reads: it too gets everything, once, in order (its
            # watcher fell behind and caught up from history meanwhile).
            late: list[int] = []

            def drain() -> None:
                for response in stalled:
                    late.extend(e.kv.mod_revision for e in response.events)
                    if len(late) >= count:
                        return

            catching_up = threading.Thread(target=drain, daemon=True)
            catching_up.start()
            catching_up.join(30)
        finally:
            stalled.cancel()
            stalled_channel.close()
            reader.close()
    assert [e.kv.mod_revision for r in got for e in r.events] == revisions
    assert late == revisions
