"""The watch hub's rules, one behaviour per test, over a real mvcc store as the history."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from kvorum.backend import Backend
from kvorum.mvcc import (
    DeleteRangeRequest,
    Event,
    EventType,
    KeyValue,
    MvccStore,
    PutRequest,
    TxnRequest,
)
from kvorum.watch import (
    ERR_DUPLICATE_WATCH_ID,
    ERR_EMPTY_RANGE,
    NO_WATCH_ID,
    CreateRequest,
    WatchConfig,
    WatchHub,
    WatchResponse,
)

S = 1  # the stream most tests use
MakeEnv = Callable[[WatchConfig], "Env"]


class Env:
    """A store, a hub fed by every write, and helpers to read what a stream was sent."""

    def __init__(self, tmp_path: Path, config: WatchConfig | None = None) -> None:
        self.backend = Backend(str(tmp_path / "db"), map_size_bytes=64 << 20)
        self.store = MvccStore(self.backend)
        self.hub = WatchHub(self.store.current_revision, config)

    def put(self, key: bytes, value: bytes = b"v") -> int:
        resp = self.store.put(PutRequest(key, value))
        self.hub.publish(resp.revision, resp.events)
        return resp.revision

    def delete(self, key: bytes, range_end: bytes = b"") -> int:
        resp = self.store.delete_range(DeleteRangeRequest(key, range_end))
        if resp.events:
            self.hub.publish(resp.revision, resp.events)
        return resp.revision

    def watch(self, key: bytes, stream: int = S, **kw: object) -> int:
        answer = self.hub.create(stream, CreateRequest(key, **kw))  # type: ignore[arg-type]
        assert answer.created and not answer.canceled, answer
        return answer.watch_id

    def take(self, stream: int = S) -> list[WatchResponse]:
        return self.hub.drain(stream, 10_000)

    def events(self, stream: int = S) -> list[Event]:
        return [e for r in self.take(stream) for e in r.events]

    def catch_up(self) -> None:
        for _ in range(1000):
            if not self.hub.sync_step(self.store, 1000).more:
                return
        raise AssertionError("sync_step never finished")


@pytest.fixture
def env(tmp_path: Path) -> Iterator[Env]:
    e = Env(tmp_path)
    yield e
    e.backend.close()


@pytest.fixture
def make_env(tmp_path: Path) -> Iterator[MakeEnv]:
    made: list[Env] = []

    def make(config: WatchConfig) -> Env:
        made.append(Env(tmp_path, config))
        return made[-1]

    yield make
    for e in made:
        e.backend.close()


# --- ids and create answers ---------------------------------------------------------------


def test_auto_ids_start_at_zero_per_stream_and_increase(env: Env) -> None:
    assert [env.watch(b"a") for _ in range(3)] == [0, 1, 2]
    assert env.watch(b"a", stream=2) == 0
    env.hub.cancel(S, 1)
    assert env.watch(b"a") == 3  # ids are not reused


def test_auto_ids_skip_ids_the_client_chose(env: Env) -> None:
    assert env.watch(b"a", watch_id=1) == 1
    assert env.watch(b"a", watch_id=2) == 2
    assert env.watch(b"a") == 0
    assert env.watch(b"a") == 3


def test_duplicate_id_is_refused_with_etcds_answer(env: Env) -> None:
    env.watch(b"a", watch_id=7)
    env.take()
    answer = env.hub.create(S, CreateRequest(b"b", watch_id=7))
    assert answer == WatchResponse(
        NO_WATCH_ID, 1, created=True, canceled=True, cancel_reason=ERR_DUPLICATE_WATCH_ID
    )
    assert env.take() == [answer]
    assert ERR_DUPLICATE_WATCH_ID == "mvcc: duplicate watch ID provided on the WatchStream"


def test_empty_range_is_refused(env: Env) -> None:
    answer = env.hub.create(S, CreateRequest(b"b", range_end=b"a"))
    assert answer.canceled and answer.cancel_reason == ERR_EMPTY_RANGE == (
        "mvcc: watcher range is empty"
    )
    assert answer.watch_id == NO_WATCH_ID
    # b"\0" is "every key from key on", never empty.
    assert not env.hub.create(S, CreateRequest(b"b", range_end=b"\x00")).canceled


def test_created_answer_comes_first_with_current_revision(env: Env) -> None:
    env.put(b"a")
    wid = env.watch(b"a")
    env.put(b"a", b"2")
    first, second = env.take()
    assert first == WatchResponse(wid, 2, created=True)
    assert second.watch_id == wid and [e.kv.value for e in second.events] == [b"2"]
    assert second.revision == 3


# --- what is delivered --------------------------------------------------------------------


def test_single_key_prefix_and_open_ranges(env: Env) -> None:
    one = env.watch(b"b")
    prefix = env.watch(b"b", range_end=b"c")
    above = env.watch(b"b", range_end=b"\x00")
    env.take()
    for key in (b"a", b"b", b"ba", b"c"):
        env.put(key)
    got: dict[int, list[bytes]] = {}
    for r in env.take():
        got.setdefault(r.watch_id, []).extend(e.kv.key for e in r.events)
    assert got == {one: [b"b"], prefix: [b"b", b"ba"], above: [b"b", b"ba", b"c"]}


def test_one_response_per_watcher_per_revision(env: Env) -> None:
    env.put(b"a")
    env.put(b"b")
    wid = env.watch(b"a", range_end=b"c")
    env.take()
    env.delete(b"a", b"c")
    [resp] = env.take()
    assert resp.watch_id == wid and resp.revision == 4
    assert [(e.type, e.kv.key) for e in resp.events] == [
        (EventType.DELETE, b"a"),
        (EventType.DELETE, b"b"),
    ]


def test_filters_drop_puts_or_deletes(env: Env) -> None:
    no_put = env.watch(b"a", no_put=True)
    no_delete = env.watch(b"a", no_delete=True)
    env.take()
    env.put(b"a")
    env.delete(b"a")
    by_id = {r.watch_id: [e.type for e in r.events] for r in env.take()}
    # A response whose every event was filtered out is not sent at all.
    assert by_id == {no_put: [EventType.DELETE], no_delete: [EventType.PUT]}


def test_prev_kv_only_when_asked_live_and_from_history(env: Env) -> None:
    env.put(b"a", b"1")
    with_prev = env.watch(b"a", prev_kv=True)
    without = env.watch(b"a")
    past = env.watch(b"a", start_revision=2, prev_kv=True)
    env.take()
    env.put(b"a", b"2")
    env.catch_up()
    got = {r.watch_id: r.events for r in env.take()}
    first = KeyValue(b"a", 2, 2, 1, b"1")
    assert got[with_prev][0].prev_kv == first
    assert got[without][0].prev_kv is None
    assert [e.prev_kv for e in got[past]] == [None, first]


def test_history_events_equal_live_events(env: Env) -> None:
    env.put(b"a")
    live = env.watch(b"a", prev_kv=True)
    env.take()
    env.store.txn(TxnRequest())  # a read-only txn writes nothing
    env.put(b"a", b"x")
    env.delete(b"a")
    seen = env.events()
    env.watch(b"a", stream=2, start_revision=2, prev_kv=True)
    env.catch_up()
    replay = env.events(2)
    assert replay[1:] == seen and len(seen) == 2 and live == 0


# --- start revisions and catching up -------------------------------------------------------


def test_past_start_revision_is_caught_up_from_history(env: Env) -> None:
    for i in range(5):
        env.put(b"k", str(i).encode())
    wid = env.watch(b"k", start_revision=3)
    assert not env.hub.is_synced(S, wid)
    env.put(b"k", b"live")
    env.catch_up()
    assert env.hub.is_synced(S, wid)
    env.put(b"k", b"after")
    values = [e.kv.value for e in env.events()]
    assert values == [b"1", b"2", b"3", b"4", b"live", b"after"]


def test_sync_step_is_bounded(env: Env) -> None:
    for i in range(10):
        env.put(b"k", str(i).encode())
    env.watch(b"k", start_revision=2)
    report = env.hub.sync_step(env.store, max_events=3)
    assert report.events_sent == 3 and report.watchers_advanced == 1 and report.more
    env.catch_up()
    assert len(env.events()) == 10


def test_future_start_revision_waits_for_it(env: Env) -> None:
    env.watch(b"k", start_revision=4)
    env.take()
    for i in range(5):
        env.put(b"k", str(i).encode())  # revisions 2..6
    assert [e.kv.mod_revision for e in env.events()] == [4, 5, 6]


def test_store_ahead_of_the_hub_is_not_sent_twice(env: Env) -> None:
    env.put(b"k")
    env.watch(b"k", start_revision=1)
    unpublished = env.store.put(PutRequest(b"k", b"later"))  # applied, not yet published
    env.catch_up()
    env.hub.publish(unpublished.revision, unpublished.events)
    assert [e.kv.mod_revision for e in env.events()] == [2, 3]


def test_a_gap_in_published_revisions_is_read_from_history(env: Env) -> None:
    env.watch(b"k")
    env.take()
    skipped = env.store.put(PutRequest(b"k", b"skipped"))
    env.put(b"k", b"next")  # revision 3 published without 2
    assert env.events() == []
    env.catch_up()
    assert [e.kv.value for e in env.events()] == [b"skipped", b"next"]
    assert skipped.revision == 2


def test_skip_to_after_a_snapshot_install_reads_the_jump_from_history(env: Env) -> None:
    """A follower that installs a leader's snapshot jumps its store without publishing: its
    watchers must get the revisions in between from history, not wait for the next write."""
    env.watch(b"k")
    env.take()
    for value in (b"a", b"b"):
        env.store.put(PutRequest(b"k", value))  # as if installed, not published
    env.hub.skip_to(env.store.current_revision)
    assert env.hub.revision == env.store.current_revision == 3
    env.catch_up()
    assert [e.kv.value for e in env.events()] == [b"a", b"b"]
    env.put(b"k", b"c")  # live publishing goes on from the new revision
    assert [e.kv.value for e in env.events()] == [b"c"]
    env.hub.skip_to(2)  # never backwards
    assert env.hub.revision == 4


# --- compaction ---------------------------------------------------------------------------


def test_start_below_compaction_is_canceled_with_compact_revision(env: Env) -> None:
    for i in range(5):
        env.put(b"k", str(i).encode())  # revisions 2..6
    env.store.compact(4)
    below = env.watch(b"k", start_revision=3)
    at = env.watch(b"k", start_revision=4)
    env.take()
    env.catch_up()
    responses = env.take()
    # etcd sends the compaction cancel with no revision in its header.
    assert WatchResponse(below, 0, canceled=True, compact_revision=4) in responses
    # etcd 3.4 accepts a start at exactly the compact revision (`minRev < compactRev`).
    assert [e.kv.mod_revision for r in responses for e in r.events] == [4, 5, 6]
    assert {r.watch_id for r in responses if r.events} == {at}
    # A compacted watcher keeps its id until the client cancels it, as in etcd.
    assert env.hub.cancel(S, below) == WatchResponse(below, 6, canceled=True)


def test_synced_watchers_do_not_care_about_compaction(env: Env) -> None:
    wid = env.watch(b"k")
    env.put(b"k")
    env.store.compact(env.store.current_revision)
    env.catch_up()
    env.put(b"k")
    assert [r.watch_id for r in env.take()] == [wid, wid, wid]


# --- cancel and close ----------------------------------------------------------------------


def test_cancel_answers_and_stops_events(env: Env) -> None:
    wid = env.watch(b"k")
    env.put(b"k")
    assert env.hub.cancel(S, wid) == WatchResponse(wid, 2, canceled=True)
    env.put(b"k")
    responses = env.take()
    assert [r.canceled for r in responses] == [False, False, True]  # created, event, cancel
    assert env.hub.cancel(S, wid) is None
    assert env.hub.cancel(99, 0) is None
    assert env.take() == []


def test_close_stream_drops_everything(env: Env) -> None:
    env.put(b"k")
    env.watch(b"k")
    env.watch(b"k", start_revision=1)  # history to replay: unsynced until caught up
    counts = (env.hub.stream_count(), env.hub.watcher_count(), env.hub.slow_watcher_count())
    assert counts == (1, 2, 1)
    env.hub.close_stream(S)
    env.put(b"k")
    assert env.hub.watcher_count() == 0 and not env.hub.has_unsynced
    assert (env.hub.stream_count(), env.hub.slow_watcher_count()) == (0, 0)
    assert env.take() == []


# --- bounded buffers ----------------------------------------------------------------------


def test_stalled_consumer_falls_back_to_history_without_growing(make_env: MakeEnv) -> None:
    env = make_env(WatchConfig(max_stream_responses=4, max_stream_bytes=10_000))
    wid = env.watch(b"k")
    other = env.watch(b"k", stream=2)
    for i in range(50):
        env.put(b"k", str(i).encode())
        env.hub.sync_step(env.store)
        env.take(2)
        count, _size = env.hub.backlog(S)
        assert count <= 4
    assert not env.hub.is_synced(S, wid)
    assert env.hub.is_synced(2, other)  # the other stream keeps up
    got: list[bytes] = []
    while True:
        got += [e.kv.value for r in env.take() for e in r.events]
        if not env.hub.sync_step(env.store).more and env.hub.backlog(S) == (0, 0):
            break
    assert got == [str(i).encode() for i in range(50)]
    assert env.hub.is_synced(S, wid)


def test_byte_limit_bounds_the_buffer(make_env: MakeEnv) -> None:
    env = make_env(WatchConfig(max_stream_bytes=2_000))
    env.watch(b"k")
    for _ in range(20):
        env.put(b"k", b"x" * 300)
        env.hub.sync_step(env.store)
        assert env.hub.backlog(S)[1] <= 2_000
    total = 0
    for _ in range(100):
        total += len(env.events())
        if not env.hub.sync_step(env.store).more and env.hub.backlog(S) == (0, 0):
            break
    assert total == 20


def test_one_response_larger_than_the_buffer_still_goes_alone(make_env: MakeEnv) -> None:
    env = make_env(WatchConfig(max_stream_bytes=100))
    env.watch(b"k")
    env.take()
    env.put(b"k", b"x" * 1000)
    assert [len(e.kv.value) for e in env.events()] == [1000]


# --- progress -----------------------------------------------------------------------------


def test_progress_notify_goes_to_idle_synced_watchers_each_interval(
    make_env: MakeEnv,
) -> None:
    env = make_env(WatchConfig(progress_interval_ticks=10))
    idle = env.watch(b"a", progress_notify=True)
    busy = env.watch(b"b", progress_notify=True)
    env.watch(b"c")  # did not ask
    behind = env.watch(b"d", progress_notify=True, start_revision=1)
    env.take()
    env.hub.progress(0)  # starts the clock
    env.put(b"b")
    env.hub.progress(9)
    assert [r.watch_id for r in env.take()] == [busy]
    env.hub.progress(10)
    assert env.take() == [WatchResponse(idle, 2)]
    env.hub.progress(20)  # busy was idle through this interval
    assert env.take() == [WatchResponse(idle, 2), WatchResponse(busy, 2)]
    assert not env.hub.is_synced(S, behind)  # unsynced watchers are never told a revision


def test_request_progress_when_synced(env: Env) -> None:
    env.watch(b"a")
    env.put(b"a")
    env.take()
    env.hub.request_progress(S)
    assert env.take() == [WatchResponse(NO_WATCH_ID, 2)]


def test_request_progress_waits_for_unsynced_watchers(env: Env) -> None:
    env.put(b"a")
    env.put(b"a")
    env.watch(b"a", start_revision=2)
    env.take()
    env.hub.request_progress(S)
    assert env.take() == []  # etcd 3.4 would already claim revision 3 here
    env.catch_up()
    responses = env.take()
    assert [e.kv.mod_revision for e in responses[0].events] == [2, 3]
    assert responses[1:] == [WatchResponse(NO_WATCH_ID, 3)]


# --- fragmentation ------------------------------------------------------------------------


def test_large_responses_are_fragmented_for_fragment_watchers(make_env: MakeEnv) -> None:
    env = make_env(WatchConfig(max_response_bytes=1_000))
    for i in range(10):
        env.put(b"k%d" % i, b"x" * 300)
    fid = env.watch(b"k", range_end=b"l", fragment=True, prev_kv=True, stream=1)
    env.watch(b"k", range_end=b"l", prev_kv=True, stream=2)
    env.take(1)
    env.take(2)
    env.delete(b"k", b"l")  # one revision, ten events of about 380 bytes with prev_kv
    pieces = env.take(1)
    assert len(pieces) > 1
    assert [p.fragment for p in pieces] == [True] * (len(pieces) - 1) + [False]
    assert all(p.watch_id == fid for p in pieces)
    joined = [e for p in pieces for e in p.events]
    [single] = env.take(2)
    assert joined == list(single.events) and len(joined) == 10
    assert not single.fragment
