"""etcd's Watch semantics as a pure core: the hub, its records and its limits.

`WatchHub` (in `hub`, whose docstring states the exactly-once invariant) takes published
revisions and client requests and queues `WatchResponse` records per stream; the gRPC
servicer is the thin shell that feeds it and sends what `drain` returns.
"""

from kvorum.watch.hub import DEFAULT_DRAIN_RESPONSES, DEFAULT_SYNC_EVENTS, WatchHub
from kvorum.watch.types import (
    AUTO_WATCH_ID,
    DEFAULT_MAX_RESPONSE_BYTES,
    DEFAULT_PROGRESS_INTERVAL_TICKS,
    ERR_DUPLICATE_WATCH_ID,
    ERR_EMPTY_RANGE,
    NO_WATCH_ID,
    CreateRequest,
    History,
    SyncReport,
    WatchConfig,
    WatchResponse,
    estimate_event_size_bytes,
)

__all__ = [
    "AUTO_WATCH_ID",
    "DEFAULT_DRAIN_RESPONSES",
    "DEFAULT_MAX_RESPONSE_BYTES",
    "DEFAULT_PROGRESS_INTERVAL_TICKS",
    "DEFAULT_SYNC_EVENTS",
    "ERR_DUPLICATE_WATCH_ID",
    "ERR_EMPTY_RANGE",
    "NO_WATCH_ID",
    "CreateRequest",
    "History",
    "SyncReport",
    "WatchConfig",
    "WatchHub",
    "WatchResponse",
    "estimate_event_size_bytes",
]
