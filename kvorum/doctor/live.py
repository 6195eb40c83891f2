"""The doctor's measures, live in a running member: metrics and a warning when a line is crossed.

A member already times its WAL fsyncs (``etcd_disk_wal_fsync_duration_seconds``) and its
heartbeat round trips (``etcd_network_peer_round_trip_time_seconds``). This adds what only the
doctor measured -- how late the event loop's timers fire and the CPU steal -- as
``kvorum_scheduling_lag_seconds`` (a histogram; etcd has no such series) and
``kvorum_cpu_steal_ratio`` (a gauge), and every ``WINDOW_S`` judges the last window by the
doctor's own lines (``kvorum.doctor.verdict``), logging a warning an operator can act on:

- the loop stalled longer than a heartbeat interval (ticks and heartbeats slipped);
- over 1 % of the window's fsyncs took longer than 16 ms (the histogram's first bound
  above etcd's 10 ms p99 guidance);
- CPU steal at or above 5 % of the window.

Each warning is logged at most once per window. The check costs one timer wake-up per
``TICK_S``; it is a task the member cancels at shutdown.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from pathlib import Path

from prometheus_client import CollectorRegistry, Gauge, Histogram

from kvorum.doctor.measure import read_steal_ticks
from kvorum.doctor.verdict import FSYNC_P99_GUIDE_MS, STEAL_WARN

__all__ = ["TICK_S", "WINDOW_S", "LiveMonitor", "slow_share"]

logger = logging.getLogger("kvorum.doctor")

TICK_S = 0.1
WINDOW_S = 10.0
SLOW_FSYNC_SHARE = 0.01  # more than 1 % slower than the guidance: the p99 is above it
#: The histogram tells only bucket bounds: 16 ms is etcd's first bound above its 10 ms line.
SLOW_FSYNC_BOUND_S = 0.016
LAG_BUCKETS_S = tuple(0.001 * 2**k for k in range(14))


def _bucket_counts(histogram: Histogram) -> dict[float, float]:
    """Cumulative counts per upper bound (``+Inf`` included) of an unlabelled histogram."""
    counts: dict[float, float] = {}
    for metric in histogram.collect():
        for sample in metric.samples:
            if sample.name.endswith("_bucket"):
                counts[float(sample.labels["le"])] = sample.value
    return counts


def slow_share(
    before: dict[float, float], after: dict[float, float], bound_s: float
) -> tuple[float, float]:
    """(observations above ``bound_s``, all observations) between two bucket readings.

    ``bound_s`` must be a bucket bound; the count at or below it is exact there.
    """
    total = after.get(float("inf"), 0.0) - before.get(float("inf"), 0.0)
    within = after.get(bound_s, 0.0) - before.get(bound_s, 0.0)
    return max(0.0, total - within), total


class LiveMonitor:
    """Timer lag and CPU steal as metrics; warnings judged per window."""

    def __init__(
        self,
        registry: CollectorRegistry,
        fsync_histogram: Histogram,
        heartbeat_interval_s: float,
        *,
        read_proc_stat: Callable[[], str] | None = None,
    ) -> None:
        self._fsync = fsync_histogram
        self._heartbeat_s = heartbeat_interval_s
        self._read_proc_stat = read_proc_stat or (lambda: Path("/proc/stat").read_text())
        self.lag = Histogram(
            "kvorum_scheduling_lag_seconds",
            "How late the member's event loop timers fire (the doctor's scheduling stalls).",
            buckets=LAG_BUCKETS_S,
            registry=registry,
        )
        self.steal = Gauge(
            "kvorum_cpu_steal_ratio",
            "Share of CPU time stolen by the hypervisor over the last window (/proc/stat).",
            registry=registry,
        )

    def _steal_ticks(self) -> tuple[int, int] | None:
        try:
            return read_steal_ticks(self._read_proc_stat())
        except OSError:
            return None

    def judge_window(
        self,
        worst_lag_s: float,
        fsync_before: dict[float, float],
        fsync_after: dict[float, float],
        steal: float | None,
    ) -> list[str]:
        """The warnings one window deserves (each an operator-facing sentence)."""
        warnings = []
        if worst_lag_s > self._heartbeat_s:
            warnings.append(
                f"the event loop stalled for {worst_lag_s * 1000:.0f} ms, longer than the "
                f"{self._heartbeat_s * 1000:.0f} ms heartbeat interval: heartbeats slipped "
                "(CPU starved or overcommitted host; run `kvorum doctor` on this machine)"
            )
        slow, total = slow_share(fsync_before, fsync_after, SLOW_FSYNC_BOUND_S)
        if total and slow / total > SLOW_FSYNC_SHARE:
            warnings.append(
                f"{slow:.0f} of {total:.0f} WAL fsyncs in the last {WINDOW_S:g} s took over "
                f"{SLOW_FSYNC_BOUND_S * 1000:g} ms (etcd's guidance: p99 under "
                f"{FSYNC_P99_GUIDE_MS:g} ms): the disk slows every write"
            )
        if steal is not None and steal >= STEAL_WARN:
            warnings.append(
                f"CPU steal at {steal * 100:.1f} % over the last {WINDOW_S:g} s: the "
                "hypervisor gives this member's CPU to others; stalls and elections follow"
            )
        return warnings

    async def run(self) -> None:
        """Measure until cancelled."""
        loop = asyncio.get_running_loop()
        window_start = loop.time()
        worst_lag_s = 0.0
        fsync_before = _bucket_counts(self._fsync)
        steal_before = self._steal_ticks()
        while True:
            asked = loop.time()
            await asyncio.sleep(TICK_S)
            now = loop.time()
            lag_s = max(0.0, now - asked - TICK_S)
            self.lag.observe(lag_s)
            worst_lag_s = max(worst_lag_s, lag_s)
            if now - window_start < WINDOW_S:
                continue
            fsync_after = _bucket_counts(self._fsync)
            steal_after = self._steal_ticks()
            steal: float | None = None
            if steal_before is not None and steal_after is not None:
                ticks = steal_after[1] - steal_before[1]
                steal = (steal_after[0] - steal_before[0]) / ticks if ticks > 0 else 0.0
                self.steal.set(steal)
            for warning in self.judge_window(worst_lag_s, fsync_before, fsync_after, steal):
                logger.warning("%s", warning)
            window_start, worst_lag_s = now, 0.0
            fsync_before, steal_before = fsync_after, steal_after
