"""The simulated network: messages in flight, their fates, and partitions.

Every fate comes from the rng handed in: a message may be dropped, delayed (a small random
latency, sometimes a long one, which reorders it behind later messages), or duplicated. A
partition assigns members to groups; a message crosses only within a group, judged when it would
be delivered (a partition that begins while a message is in flight cuts it). The number of
messages in flight is bounded; past the bound new messages are dropped, as a full socket
buffer would.
"""

from __future__ import annotations

import heapq
import random
from collections import Counter
from dataclasses import dataclass

from kvorum.raft.types import Message


@dataclass(frozen=True, slots=True)
class NetworkFaults:
    """Per-run fault rates; latencies in simulated time units."""

    drop_p: float = 0.0
    duplicate_p: float = 0.0
    latency_min_units: int = 1
    latency_max_units: int = 5
    slow_p: float = 0.0
    """Chance a message takes a long path (up to ``slow_max_units``), overtaken by later ones."""
    slow_max_units: int = 40


QUIET = NetworkFaults()
"""No loss, no duplication, short latencies: the network after every fault has healed."""


class SimNetwork:
    """Messages in flight, ordered by delivery time then by send order."""

    __slots__ = ("_group", "_heap", "_rng", "_seq", "faults", "max_in_flight", "stats")

    def __init__(
        self, rng: random.Random, faults: NetworkFaults, max_in_flight: int = 4096
    ) -> None:
        self._rng = rng
        self.faults = faults
        self.max_in_flight = max_in_flight
        self._heap: list[tuple[int, int, Message]] = []
        self._seq = 0
        self._group: dict[int, int] = {}
        self.stats: Counter[str] = Counter()

    # --- partitions -------------------------------------------------------------------------

    def connected(self, a: int, b: int) -> bool:
        return self._group.get(a, 0) == self._group.get(b, 0)

    def partition(self, *groups: tuple[int, ...]) -> None:
        """Split the members: each tuple is a group; members not named form group 0."""
        self._group = {}
        for number, members in enumerate(groups, start=1):
            for node_id in members:
                self._group[node_id] = number
        self.stats["partitions"] += 1

    def heal(self) -> None:
        if self._group:
            self.stats["heals"] += 1
        self._group = {}

    @property
    def partitioned(self) -> bool:
        return bool(self._group)

    # --- messages ---------------------------------------------------------------------------

    def send(self, msg: Message, now: int) -> int:
        """Put ``msg`` on the wire at time ``now``; returns how many copies were queued."""
        f = self.faults
        rng = self._rng
        if f.drop_p and rng.random() < f.drop_p:
            self.stats["net_dropped"] += 1
            return 0
        copies = 1
        if f.duplicate_p and rng.random() < f.duplicate_p:
            copies = 2
            self.stats["net_duplicated"] += 1
        queued = 0
        for _ in range(copies):
            if len(self._heap) >= self.max_in_flight:
                self.stats["net_overflow"] += 1
                break
            # One uniform draw per copy (randint is several times slower on this hot path).
            r = rng.random()
            if r < f.slow_p:
                span = f.slow_max_units - f.latency_max_units + 1
                delay = f.latency_max_units + int(r / f.slow_p * span)
                self.stats["net_slow"] += 1
            else:
                span = f.latency_max_units - f.latency_min_units + 1
                delay = f.latency_min_units + int((r - f.slow_p) / (1.0 - f.slow_p) * span)
            self._seq += 1
            heapq.heappush(self._heap, (now + delay, self._seq, msg))
            queued += 1
        return queued

    def hold(self, msg: Message, until: int) -> None:
        """Put a message back to arrive at ``until`` (its receiver is paused); keeps order."""
        self._seq += 1
        heapq.heappush(self._heap, (until, self._seq, msg))
        self.stats["net_held"] += 1

    def next_time(self) -> int | None:
        """Delivery time of the earliest message in flight."""
        return self._heap[0][0] if self._heap else None

    def pop(self) -> tuple[Message, bool]:
        """Take the earliest message; the flag says whether the partition lets it through."""
        _, _, msg = heapq.heappop(self._heap)
        if self._group and not self.connected(msg.frm, msg.to):
            self.stats["net_partitioned"] += 1
            return msg, False
        return msg, True

    def __len__(self) -> int:
        return len(self._heap)
