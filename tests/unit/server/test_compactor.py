"""Auto-compaction policies (pure, fake clock) and the shell that runs them."""

from __future__ import annotations

import asyncio
import itertools

import pytest

from kvorum.server.compactor import (
    REVISION_CHECK_INTERVAL_S,
    PeriodicPolicy,
    RevisionPolicy,
    policy_for,
    run_compactor,
)


def test_revision_policy_keeps_the_newest_n_revisions() -> None:
    policy = RevisionPolicy(retention_revisions=10)
    assert policy.check_interval_s == REVISION_CHECK_INTERVAL_S
    assert policy.due(0.0, current_revision=5) is None  # nothing old enough yet
    assert policy.due(300.0, current_revision=25) == 15
    policy.compacted(15, 300.0)
    assert policy.due(600.0, current_revision=25) is None  # nothing new to drop
    assert policy.due(900.0, current_revision=40) == 30


def test_revision_policy_retries_after_a_failed_compaction() -> None:
    policy = RevisionPolicy(retention_revisions=1)
    assert policy.due(0.0, 10) == 9
    # compacted() not called: the proposal failed, so the same target is due again.
    assert policy.due(300.0, 10) == 9


def test_periodic_policy_compacts_to_the_revision_current_one_retention_ago() -> None:
    policy = PeriodicPolicy(retention_s=100.0)
    assert policy.check_interval_s == pytest.approx(10.0)
    revision_at = {}
    due = []
    for step in range(0, 31):
        now_s = step * 10.0
        revision = 1 + step * 7
        revision_at[now_s] = revision
        target = policy.due(now_s, revision)
        if target is not None:
            due.append((now_s, target))
            policy.compacted(target, now_s)
    # First compaction once the samples span the retention, then once per interval (100 s).
    assert [t for t, _ in due] == [100.0, 200.0, 300.0]
    for now_s, target in due:
        assert target == revision_at[now_s - 100.0]


def test_periodic_policy_with_a_long_retention_compacts_every_hour() -> None:
    policy = PeriodicPolicy(retention_s=5 * 3600.0)
    assert policy.check_interval_s == pytest.approx(360.0)
    times = []
    for step in range(0, 10 * 10 + 1):  # ten hours in 6-minute steps
        now_s = step * 360.0
        target = policy.due(now_s, step + 1)
        if target is not None:
            times.append(now_s)
            policy.compacted(target, now_s)
            assert now_s - 5 * 3600.0 >= 0
    assert times[0] == 5 * 3600.0
    assert all(b - a == pytest.approx(3600.0) for a, b in itertools.pairwise(times))


def test_policy_for_follows_the_flags() -> None:
    assert policy_for("periodic", 0.0, 0) is None  # etcd's default: off
    assert policy_for("revision", 0.0, 0) is None
    assert isinstance(policy_for("periodic", 3600.0, 0), PeriodicPolicy)
    assert isinstance(policy_for("revision", 0.0, 1000), RevisionPolicy)


def test_only_the_leader_compacts_and_failures_are_retried() -> None:
    async def main() -> None:
        policy = RevisionPolicy(retention_revisions=2, check_interval_s=0.01)
        leader = False
        revision = 10
        calls: list[int] = []
        fail_next = True

        async def compact(target: int) -> None:
            nonlocal fail_next
            calls.append(target)
            if fail_next:
                fail_next = False
                raise RuntimeError("etcdserver: request timed out")

        task = asyncio.create_task(
            run_compactor(
                policy,
                is_leader=lambda: leader,
                current_revision=lambda: revision,
                compact=compact,
                clock=asyncio.get_running_loop().time,
            )
        )
        await asyncio.sleep(0.1)
        assert calls == []  # a follower never compacts
        leader = True
        await asyncio.sleep(0.1)
        assert calls == [8, 8]  # the first attempt failed, the second took
        revision = 20
        await asyncio.sleep(0.1)
        assert calls == [8, 8, 18]
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(main())
