"""Every bound and timing knob of the peer transport, in one frozen record."""

from __future__ import annotations

from dataclasses import dataclass

from kvorum.raft.types import MessageType

__all__ = ["BULK_MESSAGE_TYPES", "TransportLimits"]

_MiB = 1024 * 1024

BULK_MESSAGE_TYPES = frozenset({MessageType.APP, MessageType.PROP, MessageType.SNAP})
"""Types that may travel on the bulk connection; everything else always goes on the small one.

Appends (and forwarded proposals) all go on one connection by default so that they reach
the follower in the order raft sent them: an append that overtook an earlier, bigger one
would only be rejected for its gap and cost the leader a probe round trip. What must not
wait behind them — heartbeats, votes and responses — has its own connection.
"""


@dataclass(frozen=True, slots=True)
class TransportLimits:
    # Largest frame either side accepts: 64 MiB of message plus room for framing headers.
    # Snapshots are not bound by it; they travel as chunks of snapshot_chunk_bytes.
    max_frame_bytes: int = 64 * _MiB + 64 * 1024
    # Largest snapshot a receiver reassembles in memory.
    max_snapshot_bytes: int = 8 * 1024 * _MiB
    snapshot_chunk_bytes: int = 1 * _MiB
    # APP/PROP messages whose encoding is at least this large use the bulk connection;
    # smaller ones use the small connection. 0 sends every APP/PROP on the bulk one.
    bulk_min_message_bytes: int = 0
    # Per-peer, per-connection send queues. A message that does not fit is dropped and the
    # peer reported unreachable; the first message always fits an empty queue. Snapshot
    # data is a reference to bytes the caller holds, so it is not counted in queue bytes.
    small_queue_max_messages: int = 4096
    small_queue_max_bytes: int = 16 * _MiB
    bulk_queue_max_messages: int = 1024
    bulk_queue_max_bytes: int = 128 * _MiB
    # One flush writes at most this much (but always at least one message).
    flush_max_bytes: int = 4 * _MiB
    read_chunk_bytes: int = 256 * 1024
    max_cluster_info_bytes: int = 16 * _MiB
    handshake_timeout_s: float = 2.0
    # A connection whose writes cannot drain for this long is considered dead.
    write_timeout_s: float = 10.0
    # How long the sender waits, after its last chunk, for the receiver to confirm a snapshot.
    snapshot_ack_timeout_s: float = 60.0
    backoff_min_s: float = 0.05
    backoff_max_s: float = 2.0
    # Repeated warnings about the same peer and cause are logged at most once per interval.
    log_interval_s: float = 10.0

    def __post_init__(self) -> None:
        if self.snapshot_chunk_bytes <= 0 or self.snapshot_chunk_bytes + 64 > self.max_frame_bytes:
            raise ValueError("snapshot_chunk_bytes must be positive and fit in max_frame_bytes")
        if not 0 < self.backoff_min_s <= self.backoff_max_s:
            raise ValueError("need 0 < backoff_min_s <= backoff_max_s")
        for name in (
            "small_queue_max_messages",
            "small_queue_max_bytes",
            "bulk_queue_max_messages",
            "bulk_queue_max_bytes",
            "flush_max_bytes",
            "read_chunk_bytes",
        ):
            if getattr(self, name) <= 0:
                raise ValueError(f"{name} must be positive")
