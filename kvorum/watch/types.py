"""Records in and out of the watch hub, its limits, and the history interface it reads.

Field names follow etcd's `WatchCreateRequest` / `WatchResponse`, so the gRPC shell converts
field by field. Error texts are etcd 3.4's (`mvcc/watcher.go`): clients print them.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from kvorum.mvcc import Event, EventBatch

#: a create request with this watch id gets the stream's next free id (etcd's AutoWatchID).
AUTO_WATCH_ID = 0
#: watch id of responses that belong to no watcher: a failed create, a requested progress.
NO_WATCH_ID = -1

ERR_DUPLICATE_WATCH_ID = "mvcc: duplicate watch ID provided on the WatchStream"
ERR_EMPTY_RANGE = "mvcc: watcher range is empty"

#: etcd's progress report interval (`v3rpc.progressReportInterval`), in the shell's ticks of 1 s.
DEFAULT_PROGRESS_INTERVAL_TICKS = 600
#: etcd's default --max-request-bytes: larger responses of fragment watchers are split.
DEFAULT_MAX_RESPONSE_BYTES = 1536 * 1024
#: bytes a response costs beyond its events (header, ids, flags) in buffer accounting.
RESPONSE_OVERHEAD_BYTES = 48
#: bytes an event costs beyond its keys and values (types, revisions, version, lease, tags).
EVENT_OVERHEAD_BYTES = 40


@dataclass(frozen=True, slots=True)
class CreateRequest:
    """One `WatchCreateRequest`, already decoded.

    `range_end` is etcd's: b"" watches `key` alone, b"\\0" every key from `key` on, anything
    else [key, range_end). `start_revision` 0 means "after the current revision".
    """

    key: bytes
    range_end: bytes = b""
    start_revision: int = 0
    watch_id: int = AUTO_WATCH_ID
    no_put: bool = False
    no_delete: bool = False
    prev_kv: bool = False
    progress_notify: bool = False
    fragment: bool = False


@dataclass(frozen=True, slots=True)
class WatchResponse:
    """One `WatchResponse` for the shell to send, in stream order.

    `revision` is the header revision. On an event response it is the revision through which
    this watcher has now been sent every event (so a client resuming from `revision + 1` loses
    nothing); on progress, create and cancel responses it is the hub's current revision, but
    on a compaction cancel 0, as etcd's (its header then has no revision).
    `fragment` is true on every piece of a split response but the last.
    """

    watch_id: int
    revision: int
    events: tuple[Event, ...] = ()
    created: bool = False
    canceled: bool = False
    cancel_reason: str = ""
    compact_revision: int = 0
    fragment: bool = False


@dataclass(frozen=True, slots=True)
class SyncReport:
    """What one `sync_step` did; `more` says another step has work now.

    `more` with nothing advanced means history lags the hub (read from a view that has not
    seen the latest batch yet): the shell should wait a little before the next step.
    """

    events_sent: int
    watchers_advanced: int
    watchers_synced: int
    watchers_compacted: int
    more: bool


def estimate_event_size_bytes(event: Event) -> int:
    """Roughly the protobuf size of `event`: the byte strings plus a fixed overhead."""
    size = len(event.kv.key) + len(event.kv.value) + EVENT_OVERHEAD_BYTES
    prev = event.prev_kv
    if prev is not None:
        size += len(prev.key) + len(prev.value) + EVENT_OVERHEAD_BYTES
    return size


@dataclass(frozen=True, slots=True)
class WatchConfig:
    """Limits of the hub. Every buffer and batch here is bounded by one of these.

    A stream's buffer holds at most `max_stream_responses` responses and about
    `max_stream_bytes` bytes of events; a watcher whose response does not fit falls back to
    catching up from history. Create and cancel answers and one pending progress answer per
    stream always go in (they are bounded by what the client asks). A response that does not
    fit an empty buffer still goes in alone, so one large revision cannot wedge a watcher.
    """

    max_stream_responses: int = 1024
    max_stream_bytes: int = 16 << 20
    max_response_bytes: int = DEFAULT_MAX_RESPONSE_BYTES
    progress_interval_ticks: int = DEFAULT_PROGRESS_INTERVAL_TICKS
    #: unsynced watchers served by one `sync_step` (etcd's maxWatchersPerSync).
    max_sync_watchers: int = 512
    event_size_bytes: Callable[[Event], int] = estimate_event_size_bytes

    def __post_init__(self) -> None:
        for name in (
            "max_stream_responses",
            "max_stream_bytes",
            "max_response_bytes",
            "progress_interval_ticks",
            "max_sync_watchers",
        ):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1")


class History(Protocol):
    """The event history the hub catches unsynced watchers up from (`MvccStore` is one)."""

    @property
    def compact_revision(self) -> int:
        """Revisions below this are gone; at it, deletes are gone (see the hub's docstring)."""
        ...

    def events_since(
        self,
        revision: int,
        key: bytes = b"",
        range_end: bytes = b"\x00",
        limit: int = 1000,
        *,
        prev_kv: bool = False,
    ) -> EventBatch:
        """Events at main revision >= `revision` on [key, range_end), whole revisions only,
        about `limit` log entries; raises `CompactedError` below the compact revision."""
        ...
