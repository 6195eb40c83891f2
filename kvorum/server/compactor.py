"""Auto-compaction: ``--auto-compaction-mode`` periodic | revision, as etcd 3.4 runs it.

The policies are pure (time and the store's revision are passed in); ``run_compactor`` is the
thin shell that samples the member every ``check_interval_s`` and proposes the compaction
through raft like any client's ``Compact``. Only the leader compacts (etcd pauses the compactor
on followers), so a cluster compacts once per due point, not once per member.

- **revision** mode, retention ``N``: every 5 minutes, compact to ``current - N`` when that is
  above the last revision compacted — the store keeps the newest N revisions of history.
- **periodic** mode, retention ``R`` (a duration): the revision is sampled every ``I / 10``
  where ``I = min(R, 1 h)``; once the samples span ``R``, the store is compacted to the revision
  that was current ``R`` ago, then again every ``I`` — history covers at least the last ``R``.

A retention of 0 disables auto-compaction (etcd's default).
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Protocol

__all__ = [
    "REVISION_CHECK_INTERVAL_S",
    "PeriodicPolicy",
    "RevisionPolicy",
    "policy_for",
    "run_compactor",
]

logger = logging.getLogger("kvorum.server.compactor")

REVISION_CHECK_INTERVAL_S = 300.0  # etcd 3.4's revision compactor wakes every 5 minutes
_PERIODIC_INTERVAL_MAX_S = 3600.0  # a long retention still compacts every hour
_PERIODIC_SAMPLES_PER_INTERVAL = 10


class Policy(Protocol):
    check_interval_s: float

    def due(self, now_s: float, current_revision: int) -> int | None:
        """The revision to compact to now, or None; ``compacted`` must follow a success."""
        ...

    def compacted(self, revision: int, now_s: float) -> None: ...


@dataclass(slots=True)
class RevisionPolicy:
    """Keep the newest ``retention_revisions`` revisions of history."""

    retention_revisions: int
    check_interval_s: float = REVISION_CHECK_INTERVAL_S
    _last_revision: int = 0

    def due(self, now_s: float, current_revision: int) -> int | None:
        target = current_revision - self.retention_revisions
        if target <= 0 or target <= self._last_revision:
            return None
        return target

    def compacted(self, revision: int, now_s: float) -> None:
        self._last_revision = max(self._last_revision, revision)


class PeriodicPolicy:
    """Keep at least the last ``retention_s`` seconds of history."""

    __slots__ = ("_interval_s", "_last_compact_s", "_samples", "check_interval_s", "retention_s")

    def __init__(self, retention_s: float) -> None:
        if retention_s <= 0:
            raise ValueError("periodic auto-compaction needs a positive retention")
        self.retention_s = retention_s
        self._interval_s = min(retention_s, _PERIODIC_INTERVAL_MAX_S)
        self.check_interval_s = self._interval_s / _PERIODIC_SAMPLES_PER_INTERVAL
        # Invariant: samples are (time, revision) in time order; the oldest is kept only while
        # it is needed to know the revision that was current ``retention_s`` ago.
        self._samples: deque[tuple[float, int]] = deque()
        self._last_compact_s: float | None = None

    def due(self, now_s: float, current_revision: int) -> int | None:
        self._samples.append((now_s, current_revision))
        horizon_s = now_s - self.retention_s
        # Drop samples older than the newest one at or before the horizon.
        while len(self._samples) >= 2 and self._samples[1][0] <= horizon_s:
            self._samples.popleft()
        oldest_s, oldest_revision = self._samples[0]
        if oldest_s > horizon_s:
            return None  # the samples do not span the retention yet
        if self._last_compact_s is not None and now_s - self._last_compact_s < self._interval_s:
            return None
        return oldest_revision

    def compacted(self, revision: int, now_s: float) -> None:
        self._last_compact_s = now_s


def policy_for(mode: str, period_s: float, retention_revisions: int) -> Policy | None:
    """The policy the flags ask for; None when auto-compaction is off."""
    if mode == "revision":
        return RevisionPolicy(retention_revisions) if retention_revisions > 0 else None
    return PeriodicPolicy(period_s) if period_s > 0 else None


async def run_compactor(
    policy: Policy,
    *,
    is_leader: Callable[[], bool],
    current_revision: Callable[[], int],
    compact: Callable[[int], Awaitable[object]],
    clock: Callable[[], float],
) -> None:
    """Sample and compact until cancelled. Errors are logged and retried at the next check."""
    while True:
        await asyncio.sleep(policy.check_interval_s)
        now_s = clock()
        target = policy.due(now_s, current_revision())
        if target is None or not is_leader():
            continue
        logger.info("auto-compaction: compacting at revision %d", target)
        try:
            await compact(target)
        except Exception as exc:  # compacted already, no leader, timeout: try again later
            logger.warning("auto-compaction at revision %d failed: %s", target, exc)
            continue
        policy.compacted(target, now_s)
        logger.info("auto-compaction: finished at revision %d", target)
