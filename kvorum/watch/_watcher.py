"""One watcher: what it watches, how its events are shaped, and where it stands.

States (the hub moves watchers between them; nothing else does):

| state     | meaning                                               | leaves by            |
|-----------|-------------------------------------------------------|----------------------|
| SYNCED    | every event below the hub's revision + 1 is queued    | full buffer, gap     |
| UNSYNCED  | events from `next_rev` on are to be read from history | sync_step at head    |
| COMPACTED | `next_rev` was compacted (or the watcher was removed) | the client's cancel  |
"""

from __future__ import annotations

import enum

from kvorum.mvcc import Event, EventType


class State(enum.Enum):
    SYNCED = "synced"
    UNSYNCED = "unsynced"
    COMPACTED = "compacted"


class Watcher:
    """A watcher of one stream. Identity is the object (hash by id), as sets need."""

    __slots__ = (
        "fragment",
        "had_events",
        "key",
        "next_rev",
        "no_delete",
        "no_put",
        "prev_kv",
        "progress_notify",
        "range_end",
        "state",
        "stream_id",
        "watch_id",
    )

    def __init__(
        self,
        stream_id: int,
        watch_id: int,
        key: bytes,
        range_end: bytes,
        next_rev: int,
        *,
        no_put: bool,
        no_delete: bool,
        prev_kv: bool,
        progress_notify: bool,
        fragment: bool,
    ) -> None:
        self.stream_id = stream_id
        self.watch_id = watch_id
        self.key = key
        # etcd's encoding: b"" = `key` alone, b"\0" = every key from `key` on.
        self.range_end = range_end
        # The first revision whose events this watcher has not been sent. A SYNCED watcher's
        # real position is max(next_rev, hub revision + 1): next_rev only says more for a
        # watcher created with a future start revision.
        self.next_rev = next_rev
        self.no_put = no_put
        self.no_delete = no_delete
        self.prev_kv = prev_kv
        self.progress_notify = progress_notify
        self.fragment = fragment
        self.state = State.SYNCED
        # An event went out since the last progress tick (such watchers skip one notify).
        self.had_events = False

    @property
    def single_key(self) -> bool:
        return self.range_end == b""

    def matches(self, key: bytes) -> bool:
        if self.range_end == b"":
            return key == self.key
        if self.range_end == b"\x00":
            return key >= self.key
        return self.key <= key < self.range_end

    def upper_bound(self) -> bytes | None:
        """Exclusive end of the watched keys; None = unbounded."""
        if self.range_end == b"":
            return self.key + b"\x00"
        if self.range_end == b"\x00":
            return None
        return self.range_end

    def shape(self, events: list[Event]) -> tuple[Event, ...]:
        """The watcher's view of `events` (all on its keys): filtered, prev_kv dropped if
        it was not asked for (the events carry it for whoever did ask)."""
        out: list[Event] = []
        for event in events:
            if event.type == EventType.PUT:
                if self.no_put:
                    continue
            elif self.no_delete:
                continue
            if not self.prev_kv and event.prev_kv is not None:
                event = Event(event.type, event.kv)
            out.append(event)
        return tuple(out)
