"""RaftNode behaviour around the edges: logs, late ticks, transfer, stop and failure."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Sequence
from pathlib import Path

import pytest

from kvorum.raft import Entry, Snapshot
from kvorum.server.errors import (
    BadLeaderTransfereeError,
    ProposalDroppedError,
    StoppedError,
    TimeoutLeaderTransferError,
    TooManyRequestsError,
)
from tests.unit.server.helpers import HEARTBEAT_S, cluster, run

pytestmark = pytest.mark.timeout(60)


def test_elections_are_logged_and_a_late_leader_tick_warns(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="kvorum.server.raft")

    async def main() -> None:
        async with cluster(tmp_path) as c:
            lead = await c.leader()
            term = lead.raft.term
            assert f"raft: member {lead.id:x} became leader at term {term}" in caplog.text
            seen: list[tuple[int, int]] = []
            lead.raft.add_leader_listener(lambda leader, t: seen.append((leader, t)))
            follower = next(m for m in c.members if m is not lead)
            assert f"member {follower.id:x} elected leader {lead.id:x}" in caplog.text
            assert lead.raft.heartbeat_late_count == 0
            time.sleep(3 * HEARTBEAT_S)  # the loop is blocked: the leader's tick is late
            await asyncio.sleep(2 * HEARTBEAT_S)
            assert lead.raft.heartbeat_late_count >= 1
            assert "leader failed to send out heartbeat on time" in caplog.text
            # Leadership moves on: the listener hears of it with the new term.
            target = next(m for m in c.members if m is not lead)
            await lead.raft.transfer_leadership(target.id, timeout_s=5.0)
            assert seen and seen[-1] == (target.id, lead.raft.term)
            assert lead.raft.raft_status().leader == target.id

    run(main)


def test_transfer_that_cannot_finish_times_out_and_proposals_are_dropped_meanwhile(
    tmp_path: Path,
) -> None:
    async def main() -> None:
        async with cluster(tmp_path) as c:
            lead = await c.leader()
            await c.propose(b"x", via=lead)
            with pytest.raises(BadLeaderTransfereeError):
                await lead.raft.transfer_leadership(0x999, timeout_s=1.0)
            target = next(m for m in c.members if m is not lead)
            c.network.cut.add(frozenset((lead.id, target.id)))
            transfer = asyncio.create_task(lead.raft.transfer_leadership(target.id, timeout_s=0.15))
            await asyncio.sleep(0.02)
            with pytest.raises(ProposalDroppedError) as dropped:
                await lead.raft.propose(b"during transfer", timeout_s=1.0)
            assert str(dropped.value) == "raft proposal dropped"
            assert "transfer" in dropped.value.detail
            with pytest.raises(TimeoutLeaderTransferError):
                await transfer

    run(main)


def test_stop_fails_pending_requests_with_server_stopped(tmp_path: Path) -> None:
    async def main() -> None:
        async with cluster(tmp_path) as c:
            lead = await c.leader()
            for m in c.members:
                if m is not lead:
                    c.network.cut.add(frozenset((lead.id, m.id)))
            pending = asyncio.create_task(lead.raft.propose(b"never commits", timeout_s=10.0))
            await asyncio.sleep(0.05)
            node = lead.raft
            await lead.stop()
            with pytest.raises(StoppedError) as stopped:
                await pending
            assert str(stopped.value) == "etcdserver: server stopped"
            with pytest.raises(StoppedError):
                await node.propose(b"after stop", timeout_s=1.0)

    run(main)


def test_a_failing_apply_stops_the_member_from_serving(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    async def main() -> None:
        async with cluster(tmp_path) as c:
            lead = await c.leader()
            victim = next(m for m in c.members if m is not lead)

            async def broken(entries: Sequence[Entry], snapshot: Snapshot | None) -> None:
                raise OSError("disk on fire")

            victim.sm.apply = broken  # type: ignore[method-assign]
            await c.propose(b"x", via=lead)  # commits on the other two
            deadline = time.monotonic() + 5
            while victim.raft.running:
                assert time.monotonic() < deadline
                await asyncio.sleep(0.01)
            assert isinstance(victim.raft.failure, OSError)
            with pytest.raises(StoppedError):
                await victim.raft.read_index(timeout_s=1.0)
            assert "the Ready loop failed" in caplog.text
            # The rest of the cluster keeps working.
            await c.propose(b"y", via=lead)

    run(main)


def test_proposals_are_refused_while_applying_lags_far_behind_the_log(tmp_path: Path) -> None:
    async def main() -> None:
        async with cluster(tmp_path) as c:
            lead = await c.leader()
            member = next(m for m in c.members if m is not lead)
            for i in range(30):
                await c.propose(b"v%d" % i, via=lead)
            await c.converge()
            await member.stop()
            # Restarted, it has 30+ committed entries to apply again before it is current.
            await member.start(max_commit_apply_gap=10)
            assert member.raft.commit_index - member.raft.applied_index > 10
            with pytest.raises(TooManyRequestsError) as refused:
                await member.raft.propose(b"too early", timeout_s=1.0)
            assert str(refused.value) == "etcdserver: too many requests"
            await c.converge()
            await c.propose(b"later", via=member)

    run(main)
