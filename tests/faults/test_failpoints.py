"""kvorum's failpoints, each hit under load: the member dies there, restarts, and nothing is lost.

A member is restarted with ``KVORUM_FAILPOINTS=<name>@<n>`` while client workers run; it kills
itself with SIGKILL at the n-th time it reaches the point (``kvorum/server/failpoints.py``); the
test checks it died there (its log names the failpoint), restarts it without the variable, and
the run's checks then hold: the history is linearizable with a final read of every key (so
nothing acknowledged is lost), and all members converge to one HashKV at one revision.

Each point is hit on a follower, and -- but for the snapshot one -- on the leader: the workers
are held back while the armed member restarts and leadership is moved to it, so it passes its
point only a few times before it leads; under load again it reaches the n-th hit as the leader
(its log must show "became leader" before the failpoint line). A leader that dies before its
WAL write has already sent those entries to its followers (thesis 10.2.1), so they may commit
without it: the restarted member must take them back from the new leader.

``during-snapshot-apply`` needs a member that installs the leader's snapshot: it is killed
first, the log is compacted past it (``--snapshot-count`` 100, 10 entries kept), and it is
restarted armed, so it dies with the leader's database written beside its backend but not yet
swapped in; the clean restart must install the snapshot again from its own durable copy.

kvorum only: etcd's failpoints (gofail) are compiled out of the packaged binary.
"""

from __future__ import annotations

import os
import signal
import time
import zlib
from collections.abc import Callable
from pathlib import Path

import grpc
import pytest

from kvorum.api.pb.etcdserverpb import rpc_pb2
from kvorum.server import failpoints
from tests.e2e.failover.helpers import member_command
from tests.faults.runner import Plan, RunContext, run_faults

pytestmark = pytest.mark.timeout(150)

CRASH_WITHIN_S = 40.0
# Hits before the crash: the member first catches up with the cluster and takes load.
HITS_BEFORE_CRASH = 40
# Quiet while it restarts and takes over, the leader-to-be passes each point a handful of
# times at most; under load it passes them hundreds of times a second.
HITS_AS_LEADER = 60
SNAPSHOT_COUNT = 100
CATCH_UP_ENTRIES = 10
REVISIONS_WHILE_DOWN = 3 * SNAPSHOT_COUNT
RUN_S = 6.0
INSTALLED = "installed the leader's snapshot"


def _wait_exit(ctx: RunContext, index: int, within_s: float) -> int:
    m = ctx.cluster.member(index)
    deadline = time.monotonic() + within_s
    while m.running and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not m.running, f"{m.name} did not reach its failpoint within {within_s:g}s"
    code = m.returncode
    assert code is not None
    return code


def _log_text(ctx: RunContext, index: int) -> str:
    return ctx.cluster.member(index).spec.log_path.read_text(errors="replace")


def _revision(ctx: RunContext, index: int) -> int:
    try:
        return int(ctx.cluster.status(index, 2.0).header.revision)
    except grpc.RpcError:
        return 0


def _make_leader(ctx: RunContext, index: int) -> None:
    """Move leadership to member ``index`` (the workers are held back meanwhile)."""
    c = ctx.cluster
    leader = ctx.leader()
    if leader != index:
        c.member(leader).maintenance_stub().MoveLeader(
            rpc_pb2.MoveLeaderRequest(targetID=ctx.member_id(index)), timeout=10.0
        )
    assert c.wait_for_leader(10.0) == index, f"{c.member(index).name} did not take over"


def failpoint_nemesis(
    name: str, *, via_snapshot: bool = False, as_leader: bool = False
) -> Callable[[RunContext], None]:
    def run(ctx: RunContext) -> None:
        c = ctx.cluster
        if not ctx.sleep_until(1.0):
            return
        leader = ctx.leader()
        victim = (leader + 1) % c.size
        hits = HITS_AS_LEADER if as_leader else HITS_BEFORE_CRASH
        armed = {failpoints.ENV_VAR: name if via_snapshot else f"{name}@{hits}"}
        if as_leader:
            # Quiet, the armed member passes its point only a few times while it restarts
            # and takes over; under load again it reaches the n-th hit as the leader.
            ctx.quiet()
        if via_snapshot:
            # Down while the log is compacted past it: only a snapshot can catch it up.
            ctx.log(f"kill -9 {c.member(victim).name}; waiting for {REVISIONS_WHILE_DOWN} revs")
            c.kill(victim, signal.SIGKILL)
            start = _revision(ctx, leader)
            deadline = time.monotonic() + CRASH_WITHIN_S
            while _revision(ctx, leader) < start + REVISIONS_WHILE_DOWN:
                assert time.monotonic() < deadline, "the workload wrote too little"
                time.sleep(0.1)
        ctx.log(f"restart {c.member(victim).name} with {armed}")
        c.restart(victim, wait=False, env=armed)
        if as_leader:
            try:
                ctx.wait_healthy()
                _make_leader(ctx, victim)
                ctx.log(f"{c.member(victim).name} leads; load resumed")
            finally:
                ctx.resume()
        code = _wait_exit(ctx, victim, CRASH_WITHIN_S)
        log = _log_text(ctx, victim)
        assert code == -signal.SIGKILL, f"exit status {code}, not SIGKILL"
        assert f"failpoint {name} reached" in log, "the member died, but not at the failpoint"
        ctx.log(f"{c.member(victim).name} died at {name} (status {code})")
        if as_leader:
            life = log.rsplit("==== kvorum.testing: starting", 1)[-1]
            became, reached = life.find("became leader"), life.find(f"failpoint {name} reached")
            assert 0 <= became < reached, "the armed member did not die as the leader"
        ctx.faults_done[name] += 1
        c.restart(victim, wait=False)
        ctx.wait_healthy()
        ctx.log(f"{c.member(victim).name} restarted clean and healthy")
        if via_snapshot:
            after_crash = _log_text(ctx, victim).rsplit("==== kvorum.testing: starting", 1)[-1]
            assert INSTALLED in after_crash, "the clean restart did not install the snapshot"

    return run


CASES = [
    *((name, "follower") for name in sorted(failpoints.FAILPOINTS)),
    *((name, "leader") for name in sorted(failpoints.FAILPOINTS - {"during-snapshot-apply"})),
]


@pytest.mark.parametrize(("name", "role"), CASES)
def test_member_crashed_at_failpoint_restarts_and_loses_nothing(
    name: str, role: str, tmp_path: Path
) -> None:
    via_snapshot = name == "during-snapshot-apply"
    seed = int(
        os.environ.get("KVORUM_FAULTS_SEED") or zlib.crc32(f"{name}/{role}".encode()) % 10_000
    )
    plan = Plan(
        target="kvorum",
        command=member_command("kvorum"),
        size=3,
        nemeses=(name,),
        duration_s=RUN_S,
        seed=seed,
        nemesis=failpoint_nemesis(name, via_snapshot=via_snapshot, as_leader=role == "leader"),
        extra_flags=("--snapshot-count", str(SNAPSHOT_COUNT)) if via_snapshot else (),
        env={"KVORUM_SNAPSHOT_CATCHUP_ENTRIES": str(CATCH_UP_ENTRIES)} if via_snapshot else {},
    )
    result = run_faults(plan, tmp_path / "run")
    if not result.ok:
        pytest.fail(result.failure_message(), pytrace=False)
    assert result.faults_done[name] == 1, result.nemesis_log


def test_failpoint_spec_parsing() -> None:
    assert failpoints.parse("") == {}
    assert failpoints.parse("before-wal-write, during-snapshot-apply@3") == {
        "before-wal-write": 1,
        "during-snapshot-apply": 3,
    }
    with pytest.raises(ValueError, match="unknown failpoint"):
        failpoints.parse("before-wal-writ")
    with pytest.raises(ValueError, match=">= 1"):
        failpoints.parse("before-wal-write@0")
