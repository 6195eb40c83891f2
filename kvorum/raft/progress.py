"""What the leader knows about each follower's log (thesis §3.5, etcd's tracker).

A follower's progress is in one of three states:

* PROBE: the leader does not know where the follower's log matches; it sends at
  most one APP per heartbeat interval and walks ``next`` back on rejection.
* REPLICATE: the logs match up to ``match``; the leader streams entries
  optimistically (``next`` moves ahead of ``match``), bounded by an in-flight window.
* SNAPSHOT: the entries the follower needs are compacted away; a snapshot is on
  its way and nothing else is sent until it is reported or acknowledged.
"""

from __future__ import annotations

from collections import deque

from kvorum.raft.types import ProgressState


class Inflights:
    """The APP messages sent but not yet acknowledged, bounded by count and by bytes."""

    __slots__ = ("_indexes", "_sizes", "bytes", "max_bytes", "max_count")

    def __init__(self, max_count: int, max_bytes: int = 0) -> None:
        self.max_count = max_count
        self.max_bytes = max_bytes  # 0 = unbounded
        # Invariant: _indexes is strictly increasing (last index carried by each message).
        self._indexes: deque[int] = deque()
        self._sizes: deque[int] = deque()
        self.bytes = 0

    def __len__(self) -> int:
        return len(self._indexes)

    def add(self, last_index: int, size_bytes: int) -> None:
        self._indexes.append(last_index)
        self._sizes.append(size_bytes)
        self.bytes += size_bytes

    def full(self) -> bool:
        return len(self._indexes) >= self.max_count or (
            self.max_bytes > 0 and self.bytes >= self.max_bytes
        )

    def free_le(self, index: int) -> None:
        """Forget every message whose entries end at or before ``index`` (acknowledged)."""
        idx = self._indexes
        sizes = self._sizes
        while idx and idx[0] <= index:
            idx.popleft()
            self.bytes -= sizes.popleft()

    def free_first_one(self) -> None:
        if self._indexes:
            self._indexes.popleft()
            self.bytes -= self._sizes.popleft()

    def reset(self) -> None:
        self._indexes.clear()
        self._sizes.clear()
        self.bytes = 0


class Progress:
    """One follower's replication state as seen by the leader."""

    __slots__ = (
        "inflights",
        "is_learner",
        "match",
        "next",
        "pending_snapshot",
        "probe_sent",
        "recent_active",
        "sent_commit",
        "snapshot_timeouts",
        "state",
    )

    def __init__(
        self,
        next_index: int,
        inflights: Inflights,
        *,
        match: int = 0,
        is_learner: bool = False,
        recent_active: bool = False,
    ) -> None:
        # Invariant: match < next. Entries up to match are known to be in the follower's log.
        self.match = match
        self.next = next_index
        self.state = ProgressState.PROBE
        self.pending_snapshot = 0  # index of the snapshot in flight (SNAPSHOT state)
        self.recent_active = recent_active  # heard from since the last check-quorum
        self.probe_sent = False  # PROBE: an APP is out; wait for its answer or a heartbeat
        self.inflights = inflights
        self.is_learner = is_learner
        self.sent_commit = 0  # highest commit index told to this follower
        self.snapshot_timeouts = 0  # election timeouts spent waiting in SNAPSHOT state

    def _reset_state(self, state: ProgressState) -> None:
        self.probe_sent = False
        self.pending_snapshot = 0
        self.snapshot_timeouts = 0
        self.state = state
        self.inflights.reset()

    def become_probe(self) -> None:
        # Coming back from a snapshot, the follower will have it: probe just after it.
        if self.state == ProgressState.SNAPSHOT:
            pending = self.pending_snapshot
            self._reset_state(ProgressState.PROBE)
            self.next = max(self.match + 1, pending + 1)
        else:
            self._reset_state(ProgressState.PROBE)
            self.next = self.match + 1

    def become_replicate(self) -> None:
        self._reset_state(ProgressState.REPLICATE)
        self.next = self.match + 1

    def become_snapshot(self, snapshot_index: int) -> None:
        self._reset_state(ProgressState.SNAPSHOT)
        self.pending_snapshot = snapshot_index

    def maybe_update(self, index: int) -> bool:
        """An APP_RESP acknowledged ``index``; False when it tells nothing new."""
        updated = False
        if self.match < index:
            self.match = index
            updated = True
            self.probe_sent = False
        if self.next < index + 1:
            self.next = index + 1
        return updated

    def maybe_decr_to(self, rejected: int, match_hint: int) -> bool:
        """The follower rejected an APP whose previous index was ``rejected`` (§5.3).

        Returns False for a stale rejection. ``match_hint`` is the follower's best
        guess of where the logs may match (etcd's fast back-off).
        """
        if self.state == ProgressState.REPLICATE:
            if rejected <= self.match:
                return False  # stale: we already know the logs match beyond it
            self.next = self.match + 1
            return True
        if self.next - 1 != rejected:
            return False  # stale: not an answer to the probe we have out
        self.next = max(min(rejected, match_hint + 1), self.match + 1)
        self.probe_sent = False
        return True

    def is_paused(self) -> bool:
        state = self.state
        if state == ProgressState.REPLICATE:
            return self.inflights.full()
        if state == ProgressState.PROBE:
            return self.probe_sent
        return True  # SNAPSHOT: wait for the outcome
