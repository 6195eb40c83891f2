"""The watch hub: etcd's Watch semantics as a pure core (data in, responses out).

Driving it (all calls from one thread — the hub is not thread-safe):

* the apply layer calls `publish(revision, events)` after each committed write revision,
  with the events the write response carries (each with its prev_kv);
* the gRPC shell calls `create` / `cancel` / `request_progress` / `close_stream` as requests
  arrive, sends what `drain(stream_id)` returns for the streams `pop_ready_streams` names,
  and calls `progress(now_ticks)` from a timer;
* a background task calls `sync_step(history)` while `has_unsynced` and the last report
  said `more` (pausing briefly when a step advanced nothing), and wakes after `create`,
  `publish` and `drain`, which can give it work.

Nothing here blocks, sleeps, reads a clock or does I/O; `sync_step` reads history through the
`History` interface only, in bounded steps, so publishers never wait for a slow watcher.

Exactly-once, in order — the invariant everything here keeps. For every watcher w:

    the responses queued for w hold exactly the events on w's keys (after its filters) with
    revision in [w.start, P(w)), each once, in revision order, where P(w) is
    max(w.next_rev, hub revision + 1) while w is SYNCED and w.next_rev otherwise.

* `publish(r)` (r = hub revision + 1) queues r's events for SYNCED watchers only, which are
  exactly those with P(w) = r (or later, for a future start revision: they skip r). If the
  buffer is full, w turns UNSYNCED with next_rev = r, so P(w) stays r and nothing is lost.
  A revision that skips ahead (r > hub revision + 1) turns every SYNCED watcher that
  would miss the gap UNSYNCED at its P(w) first.
* `sync_step` reads history from the smallest next_rev of the watchers it serves, clips the
  batch at end = min(batch.next_revision, hub revision + 1) — the store may already hold
  revisions not yet published, or (read from another thread) lag behind — and queues for
  each watcher its events in [next_rev, end) (or the longest whole-revision prefix that fits
  its buffer), then sets next_rev to where that stopped. Reaching hub revision + 1 makes it
  SYNCED: from then on only `publish` advances it, so no revision is queued twice or missed.
* Histories are read in whole revisions (`events_since` never splits one), so "revision
  < end" always means "every event of that revision".

Compaction: a watcher whose next_rev is below the compact revision is canceled with
`compact_revision` set, as etcd 3.4 does (`w.minRev < compactRev` in
`watcherGroup.chooseAll`). A watcher at exactly the compact revision is served from history,
which compaction has stripped of that revision's deletes (mvcc keeps no tombstone at or below
the compact revision): like etcd's, such a watcher misses those deletes. This is the one
exception to the exactly-once invariant above, kept for compatibility (clients resume at the compact
revision etcd reports, and etcd accepts that).

Other choices, against etcd 3.4 (`etcdserver/api/v3rpc/watch.go`, `mvcc/watchable_store.go`):

* `request_progress` answers (watch id -1, current revision) only once every watcher of the
  stream is synced, deferring it until then; etcd 3.4 answers at once, which can tell a client
  it has seen a revision whose events are still on their way (fixed the same way in 3.5).
* An event response's header revision is the revision the watcher is now complete through,
  not the store's current revision etcd puts there, so resuming from it is always safe.
* A compacted watcher keeps its id until the client cancels it, as in etcd.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from kvorum.mvcc import CompactedError, Event
from kvorum.watch._buffer import OutputBuffer
from kvorum.watch._watcher import State, Watcher
from kvorum.watch.types import (
    AUTO_WATCH_ID,
    ERR_DUPLICATE_WATCH_ID,
    ERR_EMPTY_RANGE,
    NO_WATCH_ID,
    RESPONSE_OVERHEAD_BYTES,
    CreateRequest,
    History,
    SyncReport,
    WatchConfig,
    WatchResponse,
)

#: revision-log entries one `sync_step` reads by default (etcd reads up to 1000 revisions).
DEFAULT_SYNC_EVENTS = 1000
#: responses one `drain` returns by default.
DEFAULT_DRAIN_RESPONSES = 128


@dataclass(slots=True)
class _Stream:
    """One Watch RPC: its watchers by id, its next auto id, its output."""

    buffer: OutputBuffer
    watchers: dict[int, Watcher] = field(default_factory=dict)
    next_auto_id: int = 0
    progress_requested: bool = False


class WatchHub:
    """Every watcher of this member, and the responses waiting for their streams."""

    def __init__(self, revision: int, config: WatchConfig | None = None) -> None:
        """`revision` is the store's current revision when the hub starts."""
        self._config = config if config is not None else WatchConfig()
        self._rev = revision
        self._streams: dict[int, _Stream] = {}
        # SYNCED watchers, indexed for publish: single-key watchers by key, ranges in a list
        # scanned per event. Dicts as ordered sets (deterministic iteration).
        self._by_key: dict[bytes, dict[Watcher, None]] = {}
        self._ranged: dict[Watcher, None] = {}
        # UNSYNCED watchers, in the order sync_step serves them (served ones go to the back).
        self._unsynced: dict[Watcher, None] = {}
        self._ready: dict[int, None] = {}
        self._next_progress_tick: int | None = None

    # --- inspection -----------------------------------------------------------------------

    @property
    def revision(self) -> int:
        """The last revision published."""
        return self._rev

    @property
    def has_unsynced(self) -> bool:
        """Whether `sync_step` has work (now, or once a full buffer drains)."""
        return bool(self._unsynced)

    def watcher_count(self) -> int:
        return sum(len(s.watchers) for s in self._streams.values())

    def stream_count(self) -> int:
        return len(self._streams)

    def slow_watcher_count(self) -> int:
        """Watchers behind the published revision, caught up from history (etcd's unsynced)."""
        return len(self._unsynced)

    def backlog(self, stream_id: int) -> tuple[int, int]:
        """(responses, bytes) waiting in the stream's buffer."""
        stream = self._streams.get(stream_id)
        if stream is None:
            return 0, 0
        return len(stream.buffer), stream.buffer.size_bytes

    def is_synced(self, stream_id: int, watch_id: int) -> bool:
        stream = self._streams.get(stream_id)
        watcher = stream.watchers.get(watch_id) if stream is not None else None
        return watcher is not None and watcher.state is State.SYNCED

    # --- requests -------------------------------------------------------------------------

    def open_stream(self, stream_id: int) -> None:
        """Register a stream (the other calls do it on first use too)."""
        self._stream(stream_id)

    def create(self, stream_id: int, request: CreateRequest) -> WatchResponse:
        """Add a watcher; returns the created answer, which is also queued for the stream.

        A failed create is answered created=True, canceled=True with etcd's reason and
        watch id -1, as etcd 3.4 does.
        """
        stream = self._stream(stream_id)
        range_end = request.range_end
        if range_end not in (b"", b"\x00") and request.key >= range_end:
            return self._refuse(stream_id, stream, ERR_EMPTY_RANGE)
        watch_id = request.watch_id
        if watch_id == AUTO_WATCH_ID:
            while stream.next_auto_id in stream.watchers:
                stream.next_auto_id += 1
            watch_id = stream.next_auto_id
            stream.next_auto_id += 1
        elif watch_id in stream.watchers:
            return self._refuse(stream_id, stream, ERR_DUPLICATE_WATCH_ID)
        # etcd: 0 = after the current revision. A negative start cannot name a revision;
        # kvorum reads it as the first one.
        start = self._rev + 1 if request.start_revision == 0 else max(1, request.start_revision)
        watcher = Watcher(
            stream_id,
            watch_id,
            request.key,
            range_end,
            start,
            no_put=request.no_put,
            no_delete=request.no_delete,
            prev_kv=request.prev_kv,
            progress_notify=request.progress_notify,
            fragment=request.fragment,
        )
        stream.watchers[watch_id] = watcher
        answer = WatchResponse(watch_id, self._rev, created=True)
        self._push_control(stream_id, stream, answer)
        if start <= self._rev:
            watcher.state = State.UNSYNCED
            self._unsynced[watcher] = None
        else:
            self._index(watcher)
        return answer

    def cancel(self, stream_id: int, watch_id: int) -> WatchResponse | None:
        """Remove a watcher; its canceled answer is queued (after any events it still has
        queued) and returned. None, and nothing sent, for an unknown id — as etcd."""
        stream = self._streams.get(stream_id)
        watcher = stream.watchers.pop(watch_id, None) if stream is not None else None
        if stream is None or watcher is None:
            return None
        self._forget(watcher)
        answer = WatchResponse(watch_id, self._rev, canceled=True)
        self._push_control(stream_id, stream, answer)
        self._flush_progress(stream_id, stream)
        return answer

    def close_stream(self, stream_id: int) -> None:
        """The RPC ended: drop its watchers and whatever it had not taken."""
        stream = self._streams.pop(stream_id, None)
        if stream is None:
            return
        for watcher in stream.watchers.values():
            self._forget(watcher)
        self._ready.pop(stream_id, None)

    def request_progress(self, stream_id: int) -> None:
        """Queue a progress answer (watch id -1, current revision) once every watcher of the
        stream is synced — at once if they are, else when the last one catches up."""
        stream = self._stream(stream_id)
        stream.progress_requested = True
        self._flush_progress(stream_id, stream)

    # --- the write path -------------------------------------------------------------------

    def publish(self, revision: int, events: Sequence[Event]) -> None:
        """The events of one committed write revision (in sub-revision order)."""
        if revision <= self._rev:
            raise ValueError(f"revision {revision} already published (at {self._rev})")
        if revision > self._rev + 1:
            self._fall_behind_gap(revision)
        self._rev = revision
        matched: dict[Watcher, list[Event]] = {}
        for event in events:
            if event.kv.mod_revision != revision:
                raise ValueError(f"event at {event.kv.mod_revision} published as {revision}")
            for watcher in self._by_key.get(event.kv.key, ()):
                matched.setdefault(watcher, []).append(event)
            for watcher in self._ranged:
                if watcher.matches(event.kv.key):
                    matched.setdefault(watcher, []).append(event)
        for watcher, mine in matched.items():
            if watcher.next_rev > revision:
                continue  # a future start revision not reached yet
            shaped = watcher.shape(mine)
            if shaped and not self._push_events(watcher, shaped, revision):
                # Invariant: P(w) = revision before and after — revision was not queued.
                self._unsync(watcher, revision)

    def skip_to(self, revision: int) -> None:
        """The store jumped to ``revision`` without publishing (a leader's snapshot was
        installed): watchers that need revisions up to it read them from history."""
        if revision <= self._rev:
            return
        self._fall_behind_gap(revision + 1)
        self._rev = revision

    def _fall_behind_gap(self, revision: int) -> None:
        """Revisions in (hub revision, revision) were never published: watchers that need
        them go and read them from history."""
        head = self._rev + 1
        for watcher in [*self._ranged, *(w for ws in self._by_key.values() for w in ws)]:
            position = max(watcher.next_rev, head)
            if position < revision:
                self._unsync(watcher, position)

    # --- catching up ----------------------------------------------------------------------

    def sync_step(self, history: History, max_events: int = DEFAULT_SYNC_EVENTS) -> SyncReport:
        """Catch unsynced watchers up by one bounded read of history.

        Serves up to `max_sync_watchers` unsynced watchers whose buffers have room, reading
        about `max_events` revision-log entries. Cancels watchers whose next revision has
        been compacted.
        """
        if max_events < 1:
            raise ValueError("max_events must be >= 1")
        compacted = self._cancel_compacted(history.compact_revision)
        batch = self._pick_unsynced()
        if not batch:
            return SyncReport(0, 0, 0, compacted, more=False)
        start = min(w.next_rev for w in batch)
        key, range_end = _bounding_range(batch)
        try:
            read = history.events_since(
                start, key, range_end, max_events, prev_kv=any(w.prev_kv for w in batch)
            )
        except CompactedError:
            # Compacted between reading compact_revision and now (history read from another
            # thread): the next step cancels whoever is affected.
            return SyncReport(0, 0, 0, compacted, more=True)
        end = min(read.next_revision, self._rev + 1)
        sent = advanced = synced = 0
        touched: dict[int, None] = {}
        for watcher in batch:
            if watcher.next_rev >= end:
                self._requeue(watcher)
                continue
            before = watcher.next_rev
            mine = [
                e
                for e in read.events
                if watcher.next_rev <= e.kv.mod_revision < end and watcher.matches(e.kv.key)
            ]
            sent += self._push_history(watcher, watcher.shape(mine), end)
            advanced += watcher.next_rev > before
            if watcher.next_rev == self._rev + 1:
                self._sync(watcher)
                synced += 1
                touched[watcher.stream_id] = None
            else:
                self._requeue(watcher)
        for stream_id in touched:
            self._flush_progress(stream_id, self._streams[stream_id])
        more = any(self._streams[w.stream_id].buffer.has_room() for w in self._unsynced)
        return SyncReport(sent, advanced, synced, compacted, more=more)

    def _cancel_compacted(self, compact_revision: int) -> int:
        # etcd: only below the compact revision (see the module docstring for the cost).
        doomed = [w for w in self._unsynced if w.next_rev < compact_revision]
        for watcher in doomed:
            del self._unsynced[watcher]
            watcher.state = State.COMPACTED
            stream = self._streams[watcher.stream_id]
            # etcd's compaction cancel carries no revision in its header: 0 here too.
            answer = WatchResponse(
                watcher.watch_id, 0, canceled=True, compact_revision=compact_revision
            )
            self._push_control(watcher.stream_id, stream, answer)
            self._flush_progress(watcher.stream_id, stream)
        return len(doomed)

    def _pick_unsynced(self) -> list[Watcher]:
        limit = self._config.max_sync_watchers
        picked: list[Watcher] = []
        for watcher in self._unsynced:
            if self._streams[watcher.stream_id].buffer.has_room():
                picked.append(watcher)
                if len(picked) >= limit:
                    break
        return picked

    def _requeue(self, watcher: Watcher) -> None:
        """Send a served, still unsynced watcher to the back, so every watcher gets served."""
        del self._unsynced[watcher]
        self._unsynced[watcher] = None

    def _push_history(self, watcher: Watcher, events: tuple[Event, ...], end: int) -> int:
        """Queue the longest whole-revision prefix of `events` (all in [next_rev, end)) that
        fits the buffer; advance next_rev to where it stopped. Returns events queued."""
        if not events:
            watcher.next_rev = end
            return 0
        size_of = self._config.event_size_bytes
        sizes = [size_of(e) for e in events]
        total = RESPONSE_OVERHEAD_BYTES + sum(sizes)
        buffer = self._streams[watcher.stream_id].buffer
        count = len(events)
        stop = end
        if not buffer.fits(total):
            room = buffer.room_bytes() or 0
            count, total = _fitting_prefix(events, sizes, room)
            # The first revision left out; earlier revisions without events are done too.
            stop = events[count].kv.mod_revision if count < len(events) else end
        if count:
            self._push_events(watcher, events[:count], stop - 1, size_bytes=total, force=True)
        watcher.next_rev = stop
        return count

    # --- progress -------------------------------------------------------------------------

    def progress(self, now_ticks: int) -> None:
        """Every `progress_interval_ticks`, tell each idle synced progress_notify watcher the
        current revision (an empty response), as etcd does; watchers that were sent events
        since the last interval skip one. The first call only starts the clock."""
        if self._next_progress_tick is None:
            self._next_progress_tick = now_ticks + self._config.progress_interval_ticks
            return
        if now_ticks < self._next_progress_tick:
            return
        self._next_progress_tick = now_ticks + self._config.progress_interval_ticks
        for stream_id, stream in self._streams.items():
            for watcher in stream.watchers.values():
                if not watcher.progress_notify:
                    continue
                idle = not watcher.had_events
                watcher.had_events = False
                # Only a synced watcher's revision is a promise; a full buffer skips a notify.
                if idle and watcher.state is State.SYNCED and stream.buffer.has_room():
                    answer = WatchResponse(watcher.watch_id, self._rev)
                    self._push_control(stream_id, stream, answer)

    def _flush_progress(self, stream_id: int, stream: _Stream) -> None:
        if not stream.progress_requested:
            return
        if any(w.state is State.UNSYNCED for w in stream.watchers.values()):
            return
        stream.progress_requested = False
        self._push_control(stream_id, stream, WatchResponse(NO_WATCH_ID, self._rev))

    # --- output ---------------------------------------------------------------------------

    def drain(
        self, stream_id: int, max_responses: int = DEFAULT_DRAIN_RESPONSES
    ) -> list[WatchResponse]:
        """Take up to `max_responses` queued responses (split into fragments where the
        watcher asked), oldest first. Taking makes room, so unsynced watchers of the stream
        can catch up on the next `sync_step`."""
        stream = self._streams.get(stream_id)
        if stream is None:
            return []
        config = self._config
        out = stream.buffer.pop(max_responses, config.max_response_bytes, config.event_size_bytes)
        if len(stream.buffer):
            self._ready[stream_id] = None
        else:
            self._ready.pop(stream_id, None)
        return out

    def pop_ready_streams(self) -> list[int]:
        """Streams that have responses queued since they were last drained empty."""
        ready = list(self._ready)
        self._ready.clear()
        return ready

    # --- internals ------------------------------------------------------------------------

    def _stream(self, stream_id: int) -> _Stream:
        stream = self._streams.get(stream_id)
        if stream is None:
            buffer = OutputBuffer(self._config.max_stream_responses, self._config.max_stream_bytes)
            stream = self._streams[stream_id] = _Stream(buffer)
        return stream

    def _refuse(self, stream_id: int, stream: _Stream, reason: str) -> WatchResponse:
        answer = WatchResponse(
            NO_WATCH_ID, self._rev, created=True, canceled=True, cancel_reason=reason
        )
        self._push_control(stream_id, stream, answer)
        return answer

    def _push_control(self, stream_id: int, stream: _Stream, answer: WatchResponse) -> None:
        stream.buffer.push(answer, RESPONSE_OVERHEAD_BYTES)
        self._ready[stream_id] = None

    def _push_events(
        self,
        watcher: Watcher,
        events: tuple[Event, ...],
        revision: int,
        *,
        size_bytes: int | None = None,
        force: bool = False,
    ) -> bool:
        """Queue one event response if it fits (or `force`, when the caller checked)."""
        if size_bytes is None:
            size_of = self._config.event_size_bytes
            size_bytes = RESPONSE_OVERHEAD_BYTES + sum(size_of(e) for e in events)
        buffer = self._streams[watcher.stream_id].buffer
        if not force and not buffer.fits(size_bytes):
            return False
        response = WatchResponse(watcher.watch_id, revision, events)
        buffer.push(response, size_bytes, fragment=watcher.fragment)
        watcher.had_events = True
        self._ready[watcher.stream_id] = None
        return True

    def _index(self, watcher: Watcher) -> None:
        if watcher.single_key:
            self._by_key.setdefault(watcher.key, {})[watcher] = None
        else:
            self._ranged[watcher] = None

    def _unindex(self, watcher: Watcher) -> None:
        if watcher.single_key:
            group = self._by_key.get(watcher.key)
            if group is not None:
                group.pop(watcher, None)
                if not group:
                    del self._by_key[watcher.key]
        else:
            self._ranged.pop(watcher, None)

    def _unsync(self, watcher: Watcher, next_rev: int) -> None:
        self._unindex(watcher)
        watcher.state = State.UNSYNCED
        watcher.next_rev = next_rev
        self._unsynced[watcher] = None

    def _sync(self, watcher: Watcher) -> None:
        del self._unsynced[watcher]
        watcher.state = State.SYNCED
        self._index(watcher)

    def _forget(self, watcher: Watcher) -> None:
        if watcher.state is State.SYNCED:
            self._unindex(watcher)
        elif watcher.state is State.UNSYNCED:
            del self._unsynced[watcher]
        watcher.state = State.COMPACTED  # inert from here on, whoever still holds it


def _fitting_prefix(
    events: tuple[Event, ...], sizes: list[int], room_bytes: int
) -> tuple[int, int]:
    """(number of events, response bytes) of the longest prefix made of whole revisions
    whose response fits `room_bytes`; (0, 0) if not even the first revision fits."""
    best = (0, 0)
    total = RESPONSE_OVERHEAD_BYTES
    for i, event in enumerate(events):
        total += sizes[i]
        if total > room_bytes:
            break
        if i + 1 == len(events) or events[i + 1].kv.mod_revision != event.kv.mod_revision:
            best = (i + 1, total)
    return best


def _bounding_range(watchers: Iterable[Watcher]) -> tuple[bytes, bytes]:
    """One [key, range_end) (etcd encoding) covering every watcher's keys."""
    low: bytes | None = None
    high: bytes | None = b""
    for watcher in watchers:
        if low is None or watcher.key < low:
            low = watcher.key
        bound = watcher.upper_bound()
        if bound is None or high is None:
            high = None
        elif bound > high:
            high = bound
    if low is None or high is None or high == b"\x00":
        return low or b"", b"\x00"
    return low, high
