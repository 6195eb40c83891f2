"""Exactly-once, in order: random interleavings of writes, watch creates, stalled consumers,
sync steps, compactions, cancels and progress, against the store's own history.

Each example runs a fresh store and a hub with tiny buffers (so consumers stall all the
time and watchers keep falling back to history). A client per stream takes what the hub
queues, joins fragments and checks, as it goes and at the end, that every watcher got
exactly the events of its keys since its start revision (after its filters), each once, in
revision order — or a prefix of them and then a cancel with compact_revision when its next
revision was compacted — and that every progress answer is a true promise.

`KVORUM_LONG=1` runs many more and longer examples.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from dataclasses import dataclass, field

import hypothesis.strategies as st
from hypothesis import given, settings

from kvorum.backend import Backend
from kvorum.mvcc import (
    DeleteRangeRequest,
    Event,
    EventType,
    MvccStore,
    PutRequest,
    TxnRequest,
)
from kvorum.watch import NO_WATCH_ID, CreateRequest, WatchConfig, WatchHub, WatchResponse

LONG = os.environ.get("KVORUM_LONG") == "1"
KEYS = (b"a", b"b", b"ba", b"c")
# (key, range_end) in etcd's encoding: one key, a prefix, an open range, everything.
RANGES = ((b"b", b""), (b"b", b"c"), (b"b", b"\x00"), (b"\x00", b"\x00"), (b"a", b"bb"))
STREAMS = 3
CONFIG = WatchConfig(
    max_stream_responses=3,
    max_stream_bytes=600,
    max_response_bytes=250,
    progress_interval_ticks=1,
    max_sync_watchers=2,
)


@dataclass
class Spec:
    """What a watcher was asked for, and what its client has seen of it."""

    key: bytes
    range_end: bytes
    start: int
    no_put: bool
    no_delete: bool
    prev_kv: bool
    got: list[Event] = field(default_factory=list)
    open: bool = False
    canceled_by_client: bool = False
    compact_revision: int = 0
    last_header: int = 0
    partial: list[Event] = field(default_factory=list)

    def wants(self, event: Event) -> bool:
        key = event.kv.key
        if self.range_end == b"":
            inside = key == self.key
        elif self.range_end == b"\x00":
            inside = key >= self.key
        else:
            inside = self.key <= key < self.range_end
        if not inside or event.kv.mod_revision < self.start:
            return False
        return not (self.no_put if event.type == EventType.PUT else self.no_delete)

    def expected(
        self, log: list[Event], lossy: set[int], through: int | None = None
    ) -> list[Event]:
        """The events this watcher must get. At a revision some compaction stopped at (and
        only there) a delete may be missing and an event may lack its prev_kv: etcd serves a
        watcher at the compact revision from a history without that revision's deletes or
        the versions before it, and kvorum does as etcd."""
        out = []
        for e in log:
            if through is not None and e.kv.mod_revision > through:
                break
            if not self.wants(e):
                continue
            shaped = e if self.prev_kv else Event(e.type, e.kv)
            if e.kv.mod_revision in lossy:
                bare = Event(e.type, e.kv)
                if bare != shaped and bare in self.got:
                    shaped = bare
                elif e.type == EventType.DELETE and shaped not in self.got:
                    continue
            out.append(shaped)
        return out


class World:
    def __init__(self, path: str) -> None:
        self.backend = Backend(path, map_size_bytes=64 << 20)
        self.store = MvccStore(self.backend)
        self.hub = WatchHub(self.store.current_revision, CONFIG)
        self.log: list[Event] = []
        self.unpublished: list[Event] = []
        self.specs: dict[tuple[int, int], Spec] = {}
        self.pending: dict[tuple[int, int], Spec] = {}
        self.ticks = 0
        #: revisions compactions stopped at (their deletes are gone from history).
        self.compacted_at: set[int] = set()

    # --- writes ---------------------------------------------------------------------------

    def publish(self, revision: int, events: tuple[Event, ...]) -> None:
        if events:
            self.log.extend(self.unpublished)
            self.unpublished.clear()
            self.log.extend(events)
            self.hub.publish(revision, events)

    def hidden_put(self, key: bytes) -> None:
        """A write the apply layer has made but not published yet: the store is ahead of
        the hub, and the next publish skips a revision."""
        resp = self.store.put(PutRequest(key, b"hidden"))
        self.unpublished.extend(resp.events)

    def put(self, key: bytes, size: int) -> None:
        resp = self.store.put(PutRequest(key, bytes([65 + size % 26]) * size))
        self.publish(resp.revision, resp.events)

    def delete(self, key: bytes, range_end: bytes) -> None:
        resp = self.store.delete_range(DeleteRangeRequest(key, range_end))
        self.publish(resp.revision, resp.events)

    def txn(self, first: bytes, second: bytes, size: int) -> None:
        ops = (PutRequest(first, b"t" * size), DeleteRangeRequest(second))
        resp = self.store.txn(TxnRequest(success=ops))
        self.publish(resp.revision, resp.events)

    def compact(self, back: int) -> None:
        """Compact `back` revisions behind the store's head, or (-1) at the latest delete:
        compaction removes the deletes at its own revision, the edge etcd gets wrong."""
        target = self.store.current_revision - back
        if back < 0:
            deletes = [e for e in self.log if e.type == EventType.DELETE]
            target = deletes[-1].kv.mod_revision if deletes else 0
        if target > max(self.store.compact_revision, 0):
            self.store.compact(target)
            self.store.compact_run()
            self.compacted_at.add(target)

    # --- watch requests -------------------------------------------------------------------

    def watch(self, stream: int, start_offset: int | None, which: int, flags: int) -> None:
        key, range_end = RANGES[which]
        rev = self.hub.revision
        start = 0 if start_offset is None else max(1, rev + start_offset)
        req = CreateRequest(
            key,
            range_end,
            start_revision=start,
            no_put=flags & 1 == 1 and flags & 8 == 0,
            no_delete=flags & 2 == 2 and flags & 8 == 0,
            prev_kv=flags & 4 == 4,
            fragment=flags & 16 == 16,
            progress_notify=flags & 32 == 32,
        )
        answer = self.hub.create(stream, req)
        assert answer.created and not answer.canceled
        spec = Spec(key, range_end, start or rev + 1, req.no_put, req.no_delete, req.prev_kv)
        self.pending[(stream, answer.watch_id)] = spec

    def cancel(self, stream: int, pick: int) -> None:
        ids = sorted(wid for (s, wid) in self.specs if s == stream)
        if ids:
            wid = ids[pick % len(ids)]
            if self.hub.cancel(stream, wid) is not None:
                self.specs[(stream, wid)].canceled_by_client = True

    # --- the clients ----------------------------------------------------------------------

    def drain(self, stream: int, count: int) -> None:
        for resp in self.hub.drain(stream, count):
            self.receive(stream, resp)

    def receive(self, stream: int, resp: WatchResponse) -> None:
        assert resp.revision <= self.hub.revision
        if resp.watch_id == NO_WATCH_ID:
            assert not (resp.created or resp.canceled or resp.events)
            self.check_progress(stream, resp.revision, None)
            return
        ident = (stream, resp.watch_id)
        if resp.created:
            spec = self.pending.pop(ident)
            assert ident not in self.specs, "watch id reused"
            spec.open = True
            self.specs[ident] = spec
            return
        spec = self.specs[ident]
        if not spec.open and spec.compact_revision and spec.canceled_by_client:
            # A compacted watcher keeps its id until the client cancels it, as in etcd, and
            # that cancel is answered too.
            assert resp == WatchResponse(resp.watch_id, resp.revision, canceled=True), resp
            return
        assert spec.open, f"response after cancel: {resp}"
        if resp.canceled:
            assert not spec.partial and not resp.events
            spec.open = False
            if resp.compact_revision:
                spec.compact_revision = resp.compact_revision
            else:
                assert spec.canceled_by_client
            return
        if not resp.events:
            self.check_progress(stream, resp.revision, ident)
            return
        spec.partial.extend(resp.events)
        if resp.fragment:
            return
        events, spec.partial = spec.partial, []
        revisions = [e.kv.mod_revision for e in events]
        assert revisions == sorted(revisions)
        assert resp.revision >= revisions[-1] and resp.revision >= spec.last_header
        spec.last_header = resp.revision
        spec.got.extend(events)
        want = spec.expected(self.log, self.compacted_at)
        assert spec.got == want[: len(spec.got)], "not the expected events in order"

    def check_progress(self, stream: int, revision: int, only: tuple[int, int] | None) -> None:
        """A progress answer promises that every event through `revision` was sent."""
        for ident, spec in self.specs.items():
            if ident[0] != stream or not spec.open or (only is not None and ident != only):
                continue
            assert spec.got == spec.expected(self.log, self.compacted_at, through=revision), ident

    def quiesce(self) -> None:
        if self.unpublished:
            self.put(b"a", 1)  # publishes past the hidden revisions
        for _ in range(10_000):
            for stream in range(STREAMS):
                self.drain(stream, 1_000)
            report = self.hub.sync_step(self.store, 1_000)
            idle = all(self.hub.backlog(s) == (0, 0) for s in range(STREAMS))
            if not self.hub.has_unsynced and not report.more and idle:
                return
        raise AssertionError("the hub never settled")

    def check_final(self) -> None:
        assert not self.pending
        for ident, spec in self.specs.items():
            want = spec.expected(self.log, self.compacted_at)
            assert not spec.partial
            if spec.compact_revision:
                # Canceled because its next revision was compacted: a prefix, then nothing.
                assert spec.got == want[: len(spec.got)], ident
                assert spec.start < spec.compact_revision
                assert all(e.kv.mod_revision < spec.compact_revision for e in spec.got)
            elif spec.canceled_by_client:
                assert spec.got == want[: len(spec.got)], ident
            else:
                assert spec.open and spec.got == want, ident


_op = st.one_of(
    st.tuples(st.just("put"), st.sampled_from(KEYS), st.integers(0, 160)),
    st.tuples(st.just("put"), st.sampled_from(KEYS), st.integers(0, 20)),
    st.tuples(st.just("hidden"), st.sampled_from(KEYS), st.booleans()),
    st.tuples(st.just("delete"), st.sampled_from(KEYS), st.sampled_from((b"", b"bb", b"d"))),
    st.tuples(st.just("txn"), st.sampled_from(KEYS), st.sampled_from(KEYS), st.integers(0, 90)),
    st.tuples(
        st.just("watch"),
        st.integers(0, STREAMS - 1),
        st.none() | st.integers(-10, 3),
        st.integers(0, len(RANGES) - 1),
        st.integers(0, 63),
    ),
    st.tuples(st.just("drain"), st.integers(0, STREAMS - 1), st.integers(0, 3)),
    st.tuples(st.just("sync"), st.integers(1, 6)),
    st.tuples(st.just("compact"), st.integers(-1, 6)),
    st.tuples(st.just("cancel"), st.integers(0, STREAMS - 1), st.integers(0, 7)),
    st.tuples(st.just("progress"), st.integers(0, STREAMS - 1)),
    st.tuples(st.just("tick")),
)


def _run(world: World, op: tuple[object, ...]) -> None:
    kind = op[0]
    if kind == "put":
        world.put(op[1], op[2])
    elif kind == "hidden":
        world.hidden_put(op[1])
        if op[2]:  # catch up while the store is ahead of the hub
            world.hub.sync_step(world.store)
            for stream in range(STREAMS):
                world.drain(stream, 1_000)
    elif kind == "delete":
        key, end = op[1], op[2]
        world.delete(key, end if end == b"" or end > key else b"")
    elif kind == "txn":
        if op[1] != op[2]:
            world.txn(op[1], op[2], op[3])
    elif kind == "watch":
        world.watch(op[1], op[2], op[3], op[4])
    elif kind == "drain":
        world.drain(op[1], op[2])
    elif kind == "sync":
        world.hub.sync_step(world.store, op[1])
    elif kind == "compact":
        world.compact(op[1])
    elif kind == "cancel":
        world.cancel(op[1], op[2])
    elif kind == "progress":
        world.hub.request_progress(op[1])
    else:
        world.ticks += 1
        world.hub.progress(world.ticks)


@settings(max_examples=1000 if LONG else 150, deadline=None)
@given(ops=st.lists(_op, min_size=40, max_size=300 if LONG else 100))
def test_every_watcher_gets_its_events_exactly_once_in_order(
    ops: list[tuple[object, ...]],
) -> None:
    path = tempfile.mkdtemp(prefix="kvorum-watch-")
    world = World(os.path.join(path, "db"))
    try:
        for op in ops:
            _run(world, op)
            for stream in range(STREAMS):
                count, _size = world.hub.backlog(stream)
                # Event responses are bounded by the limit; control answers ride on top,
                # bounded by the requests made.
                assert count <= CONFIG.max_stream_responses + len(ops)
        world.quiesce()
        world.check_final()
    finally:
        world.backend.close()
        shutil.rmtree(path, ignore_errors=True)
