"""``check perf``'s logic with a tiny duration: pacing, measuring, judging, cleaning up."""

from __future__ import annotations

import io
import threading
import time
from collections.abc import Sequence

import grpc
import pytest

from kvorum.api.pb.etcdserverpb import rpc_pb2
from kvorum.api.pb.mvccpb import kv_pb2
from kvorum.ctl._conn import CallError
from kvorum.ctl.commands.check import (
    DURATION_ENV,
    KEY_BYTES,
    LOADS,
    PerfLoad,
    PerfStats,
    judge,
    prefix_end,
    run_check,
)
from kvorum.ctl.main import run


class FakeStore:
    """What the fake connections share: the keys put, and knobs for latency and errors."""

    def __init__(self, latency_s: float = 0.0, fail_every: int = 0) -> None:
        self.lock = threading.Lock()
        self.keys: dict[bytes, bytes] = {}
        self.latency_s = latency_s
        self.fail_every = fail_every
        self.puts = 0
        self.calls: list[str] = []
        self.connections = 0


class FakeConn:
    def __init__(self, store: FakeStore) -> None:
        self.store = store
        self.warnings: list[str] = []
        with store.lock:
            store.connections += 1

    def put(self, req: rpc_pb2.PutRequest) -> rpc_pb2.PutResponse:
        time.sleep(self.store.latency_s)
        with self.store.lock:
            self.store.puts += 1
            if self.store.fail_every and self.store.puts % self.store.fail_every == 0:
                text = "etcdserver: request timed out"
                raise CallError(grpc.StatusCode.UNAVAILABLE, text, text, "t")
            self.store.keys[req.key] = req.value
        return rpc_pb2.PutResponse()

    def range(self, req: rpc_pb2.RangeRequest) -> rpc_pb2.RangeResponse:
        self.store.calls.append("range")
        found = sorted(k for k in self.store.keys if req.key <= k < req.range_end)
        kvs = [kv_pb2.KeyValue(key=k) for k in found[: req.limit or None]]
        return rpc_pb2.RangeResponse(kvs=kvs)

    def delete_range(self, req: rpc_pb2.DeleteRangeRequest) -> rpc_pb2.DeleteRangeResponse:
        self.store.calls.append("delete")
        gone = [k for k in self.store.keys if req.key <= k < req.range_end]
        for k in gone:
            del self.store.keys[k]
        header = rpc_pb2.ResponseHeader(revision=1234)
        return rpc_pb2.DeleteRangeResponse(header=header, deleted=len(gone))

    def compact(self, req: rpc_pb2.CompactionRequest) -> rpc_pb2.CompactionResponse:
        self.store.calls.append(f"compact {req.revision} {req.physical}")
        return rpc_pb2.CompactionResponse()

    def defragment(self) -> rpc_pb2.DefragmentResponse:
        self.store.calls.append("defrag")
        return rpc_pb2.DefragmentResponse()

    def close(self) -> None:
        pass


def _run(argv: list[str], store: FakeStore, environ: dict[str, str]) -> tuple[int, bytes, bytes]:
    out, err = io.BytesIO(), io.BytesIO()

    def connect(_options: object, _eps: Sequence[str] | None, _pt: bool) -> FakeConn:
        return FakeConn(store)

    rc = run(argv, stdin=io.BytesIO(), stdout=out, stderr=err, environ=environ,
             connector=connect)  # type: ignore[arg-type]  # fmt: skip
    return rc, out.getvalue(), err.getvalue()


def test_loads_are_etcdctls() -> None:
    assert {k: (v.rate_per_s, v.clients, v.duration_s) for k, v in LOADS.items()} == {
        "s": (150, 50, 60),
        "m": (1000, 200, 60),
        "l": (8000, 500, 60),
        "xl": (15000, 1000, 60),
    }


def test_run_check_paces_puts_at_the_rate() -> None:
    store = FakeStore(latency_s=0.002)
    load = PerfLoad(rate_per_s=200, clients=8, duration_s=0.5)
    started = time.monotonic()
    stats = run_check(lambda: FakeConn(store), load, b"/p/")  # type: ignore[arg-type,return-value]
    took = time.monotonic() - started
    # About rate x duration puts; a loaded machine may issue fewer, never more than one extra.
    assert 15 <= len(stats.latencies_s) <= 101
    assert stats.errors == {}
    assert store.connections == 8
    assert 0.5 <= stats.total_s <= took
    assert all(0.002 <= x < 1 for x in stats.latencies_s)
    # Keys are etcdctl's: the prefix and 256 bytes starting with a varint.
    assert {len(k) for k in store.keys} == {3 + KEY_BYTES}
    assert all(k.startswith(b"/p/") for k in store.keys)
    assert {len(v) for v in store.keys.values()} == {1024}


def test_run_check_counts_errors_by_text() -> None:
    store = FakeStore(fail_every=5)
    stats = run_check(lambda: FakeConn(store), PerfLoad(100, 4, 0.3), b"/p/")  # type: ignore[arg-type,return-value]
    assert set(stats.errors) == {"etcdserver: request timed out"}
    assert stats.errors["etcdserver: request timed out"] == store.puts // 5


def _stats(
    latencies: list[float], total_s: float, errors: dict[str, int] | None = None
) -> PerfStats:
    return PerfStats(latencies_s=latencies, errors=errors or {}, total_s=total_s)


def test_judge_passes_a_good_run() -> None:
    lines, ok = judge(_stats([0.01] * 150, 1.0), PerfLoad(150, 50, 1))
    assert ok
    assert lines == [
        "PASS: Throughput is 151 writes/s",
        "PASS: Slowest request took 0.010000s",
        "PASS: Stddev is 0.000000s",
        "PASS",
    ]


def test_judge_fails_each_criterion_with_etcdctls_texts() -> None:
    latencies = [0.01] * 100 + [0.9]
    lines, ok = judge(_stats(latencies, 1.0, {"boom": 3}), PerfLoad(150, 50, 1))
    assert not ok
    assert lines[:3] == [
        "FAIL: too many errors",
        "FAIL: ERROR(boom) -> 3",
        "FAIL: Throughput too low: 102 writes/s",
    ]
    assert lines[3] == "Slowest request took too long: 0.900000s"
    assert lines[4].startswith("PASS: Stddev is 0.08")
    assert lines[-1] == "FAIL"
    spread = [0.0] * 150 + [0.45] * 150
    lines, ok = judge(_stats(spread, 2.0), PerfLoad(150, 50, 2))
    assert not ok and "Stddev too high: 0.225000s" in lines


def test_prefix_end() -> None:
    assert prefix_end(b"/etcdctl-check-perf/") == b"/etcdctl-check-perf0"
    assert prefix_end(b"a\xff") == b"b"
    assert prefix_end(b"\xff") == b"\x00"


def test_check_perf_command_end_to_end_with_a_short_duration() -> None:
    store = FakeStore(latency_s=0.001)
    rc, out, err = _run(
        ["check", "perf", "--load=s", "--auto-compact", "--auto-defrag", "--endpoints=a:1,b:2"],
        store,
        {DURATION_ENV: "0.5"},
    )
    lines = out.decode().splitlines()
    assert err == b""  # no terminal: no progress bar
    assert lines[:6] == [
        "Compacting with revision 1234",
        "Compacted with revision 1234",
        'Defragmenting "a:1"',
        'Defragmented "a:1"',
        'Defragmenting "b:2"',
        'Defragmented "b:2"',
    ]
    assert lines[6].startswith(("PASS: Throughput is ", "FAIL: Throughput too low: "))
    assert lines[-1] in ("PASS", "FAIL") and rc == (0 if lines[-1] == "PASS" else 1)
    # The keys were cleaned up, then compaction and defragmentation ran.
    assert store.keys == {}
    assert store.calls == ["range", "delete", "compact 1234 True", "defrag", "defrag"]


def test_check_perf_refuses_a_prefix_with_keys_and_unknown_loads() -> None:
    store = FakeStore()
    store.keys[b"/etcdctl-check-perf/x"] = b"v"
    rc, out, err = _run(["check", "perf"], store, {})
    assert (rc, out) == (3, b"")
    assert err == (
        b'Error: prefix "/etcdctl-check-perf/" has keys. Delete with etcdctl del --prefix '
        b"/etcdctl-check-perf/ first\n"
    )
    assert _run(["check", "perf", "--load=huge"], FakeStore(), {}) == (
        4,
        b"",
        b"Error: unknown load option huge\n",
    )


@pytest.mark.parametrize("bad", ["x", "0", "61"])
def test_the_duration_override_is_checked(bad: str) -> None:
    rc, _, err = _run(["check", "perf"], FakeStore(), {DURATION_ENV: bad})
    assert rc == 1 and DURATION_ENV.encode() in err
