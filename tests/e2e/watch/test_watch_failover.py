"""Watchers on a 3-member kvorum cluster through a compaction and a SIGKILL of the leader.

Writers on every member put unique values into a small keyspace (some writes are two-put
txns); a gRPC watcher on each member watches the keyspace from the first revision. Midway the
keyspace is compacted at a revision every watcher has already seen, later the leader is killed
and restarted. Every watcher on a surviving member must then hold exactly the history that
`Range(revision=r)` reads back for each revision (below the compaction point, read just before
compacting): every revision once, in order, a txn's puts under one revision, every acknowledged
write with its revision and nothing more. The watcher
on the killed leader ends with it; what it got before must be a prefix of that history.
"""

from __future__ import annotations

import queue
import signal
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc
import pytest

from kvorum.api.pb.etcdserverpb import rpc_pb2, rpc_pb2_grpc
from kvorum.testing import Cluster
from tests.e2e.member.helpers import kvorum_cluster
from tests.e2e.watch.helpers import GrpcWatch

pytestmark = pytest.mark.timeout(180)

PREFIX, PREFIX_END = b"wf/", b"wf0"
WRITERS, WRITES_EACH = 3, 150
KEY_SPACE = 5
#: Every TXN_EVERY-th write is one txn of two puts: two events under one revision.
TXN_EVERY = 10
RPC_TIMEOUT_S = 5.0
#: A writer gives up after this long or this many failed writes (a dead member fails fast).
WRITER_BUDGET_S = 90.0
WRITER_FAILURES_MAX = 30
#: Generous bounds for a 2-core machine shared with other test runs.
PHASE_WAIT_S = 60.0
DELIVERY_WAIT_S = 45.0
NEW_LEADER_WITHIN_S = 15.0

#: One event as compared: (revision, key, value).
Change = tuple[int, bytes, bytes]


@dataclass(slots=True)
class Writes:
    """What the writers did: acknowledged writes by revision, and writes whose fate is
    unknown (the RPC failed: the write may or may not have committed, at most once)."""

    lock: threading.Lock = field(default_factory=threading.Lock)
    acked: dict[int, frozenset[tuple[bytes, bytes]]] = field(default_factory=dict)
    uncertain: list[frozenset[tuple[bytes, bytes]]] = field(default_factory=list)

    def acked_count(self) -> int:
        with self.lock:
            return len(self.acked)


def _write_ops(writer: int, i: int) -> list[tuple[bytes, bytes]]:
    """The puts of write `i` of `writer`: values are unique across the whole test."""
    key = f"wf/{(writer + i) % KEY_SPACE}".encode()
    value = f"{writer}-{i}".encode()
    if i % TXN_EVERY != TXN_EVERY - 1:
        return [(key, value)]
    other = f"wf/{(writer + i + 1) % KEY_SPACE}".encode()
    return [(key, value), (other, value + b"+")]


@dataclass(frozen=True, slots=True)
class Gates:
    """Writers wait at these points until the test has done its fault, so that writes are
    still going on when the compaction and the kill happen, however fast the writers are."""

    compacted: threading.Event = field(default_factory=threading.Event)
    killed: threading.Event = field(default_factory=threading.Event)
    stop: threading.Event = field(default_factory=threading.Event)

    def wait_before(self, i: int) -> None:
        if i == WRITES_EACH // 2:
            self.compacted.wait(PHASE_WAIT_S)
        elif i == 3 * WRITES_EACH // 4:
            self.killed.wait(PHASE_WAIT_S)


def _writer(cluster: Cluster, writer: int, writes: Writes, gates: Gates) -> None:
    """Write WRITES_EACH times, starting on member `writer`; on a failed RPC, record the write
    as uncertain (never retried: a retry could commit it twice) and move to the next member."""
    channels = [grpc.insecure_channel(m.spec.client_address) for m in cluster.members]
    stubs: list[Any] = [rpc_pb2_grpc.KVStub(ch) for ch in channels]  # type: ignore[no-untyped-call]
    member, failures = writer % len(stubs), 0
    deadline = time.monotonic() + WRITER_BUDGET_S
    try:
        for i in range(WRITES_EACH):
            gates.wait_before(i)
            if gates.stop.is_set() or time.monotonic() > deadline:
                return
            if failures > WRITER_FAILURES_MAX:
                return
            ops = _write_ops(writer, i)
            try:
                if len(ops) == 1:
                    put = rpc_pb2.PutRequest(key=ops[0][0], value=ops[0][1])
                    revision = stubs[member].Put(put, timeout=RPC_TIMEOUT_S).header.revision
                else:
                    txn = rpc_pb2.TxnRequest(
                        success=[
                            rpc_pb2.RequestOp(request_put=rpc_pb2.PutRequest(key=k, value=v))
                            for k, v in ops
                        ]
                    )
                    revision = stubs[member].Txn(txn, timeout=RPC_TIMEOUT_S).header.revision
            except grpc.RpcError:
                failures += 1
                with writes.lock:
                    writes.uncertain.append(frozenset(ops))
                member = (member + 1) % len(stubs)
                continue
            with writes.lock:
                assert revision not in writes.acked, f"two writes acknowledged at {revision}"
                writes.acked[revision] = frozenset(ops)
    finally:
        for ch in channels:
            ch.close()


@dataclass(slots=True)
class WatchLog:
    """Everything one Watch stream delivered, pulled without blocking the test's flow."""

    stream: GrpcWatch
    responses: list[rpc_pb2.WatchResponse] = field(default_factory=list)
    ended: str = ""

    def pull(self, wait_s: float = 0.0) -> None:
        """Take what has arrived (waiting up to `wait_s` for the first response)."""
        timeout_s = wait_s
        while not self.ended:
            try:
                self.responses.append(self.stream.take(max(timeout_s, 0.001)))
            except queue.Empty:
                return
            except AssertionError as ended:  # the RPC ended (its member died)
                self.ended = str(ended)
                return
            timeout_s = 0.0

    def changes(self) -> list[Change]:
        return [(e.kv.mod_revision, e.kv.key, e.kv.value) for r in self.responses for e in r.events]

    def last_revision(self) -> int:
        return max((rev for rev, _, _ in self.changes()), default=0)

    def pull_until_revision(self, revision: int, timeout_s: float) -> None:
        """Pull until an event at `revision` or later has arrived."""
        deadline = time.monotonic() + timeout_s
        while self.last_revision() < revision:
            assert not self.ended, f"the watch ended: {self.ended}"
            assert time.monotonic() < deadline, f"timed out; last seen {self.last_revision()}"
            self.pull(0.2)


def _history(cluster: Cluster, member: int, first: int, last: int) -> list[Change]:
    """The keyspace's changes at each revision in [first, last], read with `get --rev`:
    at revision r the keys whose mod_revision is r are exactly the puts of revision r."""
    kv: Any = cluster.member(member).kv_stub()
    changes: list[Change] = []
    for revision in range(first, last + 1):
        resp = kv.Range(
            rpc_pb2.RangeRequest(key=PREFIX, range_end=PREFIX_END, revision=revision),
            timeout=RPC_TIMEOUT_S,
        )
        at = sorted((kv.key, kv.value) for kv in resp.kvs if kv.mod_revision == revision)
        assert at, f"revision {revision} changed nothing in the keyspace"
        changes.extend((revision, key, value) for key, value in at)
    return changes


def _by_revision(changes: list[Change]) -> dict[int, frozenset[tuple[bytes, bytes]]]:
    grouped: dict[int, set[tuple[bytes, bytes]]] = {}
    for revision, key, value in changes:
        grouped.setdefault(revision, set()).add((key, value))
    return {revision: frozenset(pairs) for revision, pairs in grouped.items()}


def _wait(check: Callable[[], bool], what: str, timeout_s: float = PHASE_WAIT_S) -> None:
    deadline = time.monotonic() + timeout_s
    while not check():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def test_watchers_see_every_revision_once_through_compaction_and_leader_kill(
    tmp_path: Path,
) -> None:
    total = WRITERS * WRITES_EACH
    with kvorum_cluster(3, tmp_path) as c:
        leader = c.wait_for_leader()
        followers = [i for i in range(3) if i != leader]
        head = c.member(leader).kv_stub().Range(rpc_pb2.RangeRequest(key=PREFIX))
        start = head.header.revision + 1
        logs = {i: WatchLog(GrpcWatch(c.member(i).spec.client_address)) for i in range(3)}
        writes, gates = Writes(), Gates()
        threads = [
            threading.Thread(target=_writer, args=(c, n, writes, gates), daemon=True)
            for n in range(WRITERS)
        ]
        try:
            for log in logs.values():
                log.stream.create(PREFIX, range_end=PREFIX_END, start_revision=start)
                log.pull(10.0)
                assert log.responses and log.responses[0].created, log.responses
            for t in threads:
                t.start()

            # A third written: compact at a revision every watcher has already seen.
            _wait(lambda: writes.acked_count() >= total // 3, "a third of the writes")
            for log in logs.values():
                log.pull_until_revision(start + 1, PHASE_WAIT_S)
            compacted = min(log.last_revision() for log in logs.values())
            # The history below the compaction point, read while it is still there.
            history = _history(c, leader, start, compacted - 1)
            kv_on_follower: Any = c.member(followers[0]).kv_stub()
            kv_on_follower.Compact(
                rpc_pb2.CompactionRequest(revision=compacted, physical=True),
                timeout=RPC_TIMEOUT_S,
            )
            # A new watch from before the compaction point is refused with it (on the member
            # that applied the compaction: the request waited for that).
            late = GrpcWatch(c.member(followers[0]).spec.client_address)
            try:
                late.create(PREFIX, range_end=PREFIX_END, start_revision=start)
                refused = late.take_until(lambda got: any(r.canceled for r in got))
            finally:
                late.close()
            assert refused[-1].compact_revision == compacted, refused
            gates.compacted.set()

            # Two thirds written: SIGKILL the leader; writes go on through the others.
            _wait(lambda: writes.acked_count() >= 2 * total // 3, "two thirds of the writes")
            old_id = c.status(leader).header.member_id
            c.kill(leader, signal.SIGKILL)
            gates.killed.set()
            new_leader = c.wait_for_leader(NEW_LEADER_WITHIN_S, exclude=[leader])
            assert c.status(new_leader).leader != old_id
            c.restart(leader)
            for t in threads:
                t.join(WRITER_BUDGET_S + RPC_TIMEOUT_S)
            assert not any(t.is_alive() for t in threads), "a writer did not finish"

            survivor: Any = c.member(new_leader).kv_stub()
            last = survivor.Range(
                rpc_pb2.RangeRequest(key=PREFIX), timeout=RPC_TIMEOUT_S
            ).header.revision
            for i in followers:
                logs[i].pull_until_revision(last, DELIVERY_WAIT_S)
            logs[leader].pull()
            history += _history(c, new_leader, compacted, last)
        finally:
            gates.stop.set()
            gates.compacted.set()
            gates.killed.set()
            for log in logs.values():
                log.stream.close()

    # The history itself: every revision from start to last, each one write, each value once.
    history_by_rev = _by_revision(history)
    assert sorted(history_by_rev) == list(range(start, last + 1))
    values = [value for _, _, value in history]
    assert len(values) == len(set(values)), "a write committed twice"
    known = set(writes.acked.values()) | set(writes.uncertain)
    assert all(pairs in known for pairs in history_by_rev.values()), "an unknown write"
    for revision, pairs in writes.acked.items():
        assert history_by_rev.get(revision) == pairs, f"acknowledged write at {revision} lost"
    assert len(writes.acked) >= total - WRITERS * WRITER_FAILURES_MAX

    # Survivors: exactly the history, in revision order, never canceled by the compaction.
    for i in followers:
        got = [change for change in logs[i].changes() if change[0] <= last]
        revisions = [rev for rev, _, _ in got]
        assert revisions == sorted(revisions), f"member {i}: out of revision order"
        assert not any(r.canceled for r in logs[i].responses), f"member {i}: canceled"
        assert sorted(got) == history, f"member {i}: lost or repeated events"
    # The killed leader's watcher got a prefix of the same history before it died.
    died = sorted(logs[leader].changes())
    assert died == history[: len(died)]
    assert len(died) < len(history), "the leader was killed after the last write"
    assert logs[leader].ended, "the killed member's watch stream did not end"
