"""The doctor's live monitor in a member: its window judgement, and a real run on a loop that
is made to stall, with a disk histogram that is made slow."""

from __future__ import annotations

import asyncio
import logging
import time

import pytest
from prometheus_client import CollectorRegistry, Histogram

from kvorum.doctor import live
from kvorum.doctor.live import LiveMonitor, slow_share

INF = float("inf")


def fsync_histogram(registry: CollectorRegistry) -> Histogram:
    return Histogram("fsync_seconds", "test", buckets=live.LAG_BUCKETS_S, registry=registry)


def proc_stat(steal: int, total_other: int) -> str:
    return f"cpu  {total_other} 0 0 0 0 0 0 {steal} 0 0\n"


def test_slow_share_between_two_readings() -> None:
    before = {0.008: 10.0, 0.016: 10.0, INF: 10.0}
    after = {0.008: 90.0, 0.016: 95.0, INF: 110.0}
    assert slow_share(before, after, 0.016) == (15.0, 100.0)
    assert slow_share({}, {}, 0.016) == (0.0, 0.0)


def test_window_judgement() -> None:
    registry = CollectorRegistry()
    monitor = LiveMonitor(registry, fsync_histogram(registry), 0.1)
    calm = {0.016: 100.0, INF: 100.0}
    assert monitor.judge_window(0.02, {}, calm, 0.0) == []
    stalled = monitor.judge_window(0.35, {}, calm, None)
    assert len(stalled) == 1 and "stalled for 350 ms" in stalled[0]
    slow_disk = monitor.judge_window(0.0, {}, {0.016: 97.0, INF: 100.0}, 0.0)
    assert len(slow_disk) == 1 and "3 of 100 WAL fsyncs" in slow_disk[0]
    stolen = monitor.judge_window(0.0, {}, calm, 0.08)
    assert len(stolen) == 1 and "CPU steal at 8.0 %" in stolen[0]


def test_a_stalled_loop_and_a_slow_disk_are_measured_and_warned(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(live, "WINDOW_S", 0.4)
    monkeypatch.setattr(live, "TICK_S", 0.02)
    # Every reading: 30 more ticks stolen out of 100 (30 %).
    readings = (proc_stat(30 * i, 70 * i) for i in range(1000))
    registry = CollectorRegistry()
    fsync = fsync_histogram(registry)
    monitor = LiveMonitor(registry, fsync, 0.1, read_proc_stat=lambda: next(readings))

    async def scenario() -> None:
        task = asyncio.create_task(monitor.run())
        await asyncio.sleep(0.05)
        time.sleep(0.25)  # the loop is blocked: a stall longer than the 100 ms heartbeat
        for _ in range(5):
            fsync.observe(0.05)  # slower than etcd's 10 ms guidance
        await asyncio.sleep(0.6)
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)

    with caplog.at_level(logging.WARNING, logger="kvorum.doctor"):
        asyncio.run(scenario())
    text = "\n".join(r.getMessage() for r in caplog.records)
    assert "the event loop stalled for" in text
    assert "5 of 5 WAL fsyncs" in text
    assert "CPU steal at 30.0 %" in text
    lag_count = registry.get_sample_value("kvorum_scheduling_lag_seconds_count")
    assert lag_count is not None and lag_count >= 5
    over_100ms = registry.get_sample_value("kvorum_scheduling_lag_seconds_bucket", {"le": "0.128"})
    assert over_100ms is not None and over_100ms < lag_count  # the stall is in a high bucket
    assert registry.get_sample_value("kvorum_cpu_steal_ratio") == pytest.approx(0.3)
