"""Three RaftNodes over an in-memory network, each with a real WAL in its own data dir."""

from __future__ import annotations

import asyncio
import os
import time
from pathlib import Path

import pytest

from kvorum.raft import ConfChange, ConfChangeType, MessageType, StateRole
from kvorum.server import RaftStorage, StorageOptions
from kvorum.server.errors import NoLeaderDeadlineError, RequestTimeoutError
from tests.unit.server.helpers import CLUSTER_ID, Cluster, Member, cluster, run

pytestmark = pytest.mark.timeout(60)

LONG = os.environ.get("KVORUM_LONG") == "1"


async def write_many(c: Cluster, tag: str, tasks: int, per_task: int) -> set[bytes]:
    """``tasks`` concurrent writers, each proposing ``per_task`` values through every member."""
    members = c.members

    async def writer(t: int) -> None:
        for i in range(per_task):
            up = [m for m in members if m.up]
            via = up[(t + i) % len(up)]  # followers forward to the leader
            await c.propose(b"%s-%d-%d" % (tag.encode(), t, i), via=via)

    await asyncio.gather(*(writer(t) for t in range(tasks)))
    return {b"%s-%d-%d" % (tag.encode(), t, i) for t in range(tasks) for i in range(per_task)}


def assert_same_history(c: Cluster) -> list[bytes]:
    up = c.running()
    reference = up[0].sm.values
    for m in up[1:]:
        assert m.sm.values == reference, f"member {m.id:x} applied a different history"
    return reference


@pytest.mark.parametrize("uv", [False, True], ids=["asyncio", "uvloop"])
def test_leader_elected_and_1000_proposals_applied_in_same_order(tmp_path: Path, uv: bool) -> None:
    async def main() -> None:
        async with cluster(tmp_path) as c:
            lead = await c.leader()
            assert all(m.raft.leader_id == lead.id for m in c.members)
            assert lead.raft.term >= 1
            scale = 10 if LONG else 1
            started = time.monotonic()
            written = await write_many(c, "w", tasks=5, per_task=200 * scale)
            took_s = time.monotonic() - started
            await c.converge()
            history = assert_same_history(c)
            assert written <= set(history)
            # Batching: far fewer Readys (transport flushes) than proposals on the leader.
            assert lead.transport is not None
            assert lead.transport.flushes < len(written), (lead.transport.flushes, took_s)

    run(main, uv=uv)


def test_leader_stopped_new_leader_takes_over_and_restarted_member_catches_up(
    tmp_path: Path,
) -> None:
    async def main() -> None:
        async with cluster(tmp_path) as c:
            old = await c.leader()
            before = await write_many(c, "a", tasks=3, per_task=50)
            await old.stop()
            new = await c.leader()
            assert new.id != old.id
            after = await write_many(c, "b", tasks=3, per_task=50)
            await old.start()
            await c.converge()
            history = assert_same_history(c)
            assert before | after <= set(history)
            assert old.sm.snapshots_restored == 0  # caught up from the log alone

    run(main)


def test_restarted_member_catches_up_through_a_snapshot(tmp_path: Path) -> None:
    opts = StorageOptions(snapshot_count=40, catch_up_entries=10, segment_size_bytes=16 * 1024)

    async def main() -> None:
        async with cluster(tmp_path, options=opts) as c:
            lead = await c.leader()
            lagging = next(m for m in c.members if m is not lead)
            await write_many(c, "a", tasks=2, per_task=10)
            await lagging.stop()
            await write_many(c, "b", tasks=4, per_task=50)
            # The leader's log no longer reaches back to what the lagging member has.
            assert lead.raft.storage.memory.first_index() > lagging_last_index(lagging)
            await lagging.start()
            await c.converge()
            assert lagging.sm.snapshots_restored >= 1
            assert c.network.sent_by_type[MessageType.SNAP] >= 1
            assert_same_history(c)
            # The snapshot taken from the leader is on the lagging member's disk too.
            assert any(lagging.data_dir.snap_dir.glob("*.snap"))
            # Restarted again, it starts from that snapshot and the WAL after it.
            history = assert_same_history(c)
            await lagging.stop()
            await lagging.start()
            assert lagging.sm.snapshots_restored == 1  # at start, from its own disk
            assert lagging.sm.values[: len(history)] == history[: len(lagging.sm.values)]
            await c.converge()
            assert assert_same_history(c) == history

    def lagging_last_index(m: Member) -> int:
        storage = RaftStorage.open_or_create(m.data_dir, m.id, CLUSTER_ID, m.voters, opts)
        try:
            return storage.memory.last_index()
        finally:
            storage.wal.wal.close()

    run(main)


def test_whole_cluster_restarts_from_its_data_dirs(tmp_path: Path) -> None:
    opts = StorageOptions(snapshot_count=30, catch_up_entries=5, segment_size_bytes=16 * 1024)

    async def main() -> None:
        async with cluster(tmp_path, options=opts) as c:
            await c.leader()
            written = await write_many(c, "x", tasks=2, per_task=50)
            await c.converge()
            history = assert_same_history(c)
            for m in c.members:
                await m.stop()
            for m in c.members:
                await m.start()
            await c.leader()
            await c.converge()
            # Restored from each member's snapshot file plus the WAL after it.
            assert all(m.sm.snapshots_restored == 1 for m in c.members)
            assert assert_same_history(c)[: len(history)] == history
            assert written <= set(history)
            more = await write_many(c, "y", tasks=1, per_task=10)
            await c.converge()
            assert more <= set(assert_same_history(c))

    run(main)


def test_linearizable_read_after_write_sees_it_and_reads_are_batched(tmp_path: Path) -> None:
    async def main() -> None:
        async with cluster(tmp_path) as c:
            lead = await c.leader()
            follower = next(m for m in c.members if m is not lead)
            # Cut the follower off while the write commits on the other two: its state
            # machine is behind when the read starts, so the read must wait for apply.
            c.network.cut.add(frozenset((lead.id, follower.id)))
            index = await c.propose(b"written", via=lead)
            assert b"written" not in follower.sm.values
            c.network.cut.clear()
            read_index = await follower.raft.read_index(timeout_s=5.0)
            assert read_index >= index
            assert b"written" in follower.sm.values
            assert follower.sm.applied_index >= read_index
            # 50 reads at once share a handful of ReadIndex rounds.
            c.network.sent_by_type.clear()
            indexes = await asyncio.gather(
                *(follower.raft.read_index(timeout_s=5.0) for _ in range(50))
            )
            assert all(i >= index for i in indexes)
            assert c.network.sent_by_type[MessageType.READ_INDEX] <= 5

    run(main)


def test_no_quorum_proposals_time_out_and_later_requests_see_no_leader(tmp_path: Path) -> None:
    async def main() -> None:
        async with cluster(tmp_path) as c:
            lead = await c.leader()
            await c.propose(b"before", via=lead)
            for m in c.members:
                if m is not lead:
                    await m.stop()
            with pytest.raises(RequestTimeoutError) as timed_out:
                await lead.raft.propose(b"lost", timeout_s=0.3)
            assert str(timed_out.value).startswith("etcdserver: request timed out")
            assert timed_out.value.grpc_code == "UNAVAILABLE"
            # Check-quorum: the isolated leader steps down within an election timeout.
            deadline = time.monotonic() + 5
            while lead.raft.role == StateRole.LEADER:
                assert time.monotonic() < deadline, "the leader never stepped down"
                await asyncio.sleep(0.01)
            # With no leader, reads and proposals wait for one until their deadline and then
            # time out, as etcd's do (etcd answers "no leader" only to clients that ask for
            # a leader up front).
            with pytest.raises(NoLeaderDeadlineError) as no_leader:
                await lead.raft.read_index(timeout_s=0.3)
            assert (no_leader.value.grpc_code, str(no_leader.value)) == (
                "UNKNOWN",
                "context deadline exceeded",
            )
            with pytest.raises(NoLeaderDeadlineError):
                await lead.raft.propose(b"refused", timeout_s=0.3)

    run(main)


def test_leadership_transfer_and_conf_change(tmp_path: Path) -> None:
    async def main() -> None:
        async with cluster(tmp_path) as c:
            lead = await c.leader()
            await c.propose(b"x", via=lead)
            target = next(m for m in c.members if m is not lead)
            await lead.raft.transfer_leadership(target.id, timeout_s=5.0)
            assert (await c.leader()).id == target.id
            conf = await target.raft.propose_conf_change(
                ConfChange(ConfChangeType.ADD_LEARNER_NODE, 0x77), timeout_s=5.0
            )
            assert conf.learners == (0x77,)
            await c.converge()
            assert all(m.raft.conf_state.learners == (0x77,) for m in c.members)
            # Through a follower, which forwards the proposal.
            conf = await lead.raft.propose_conf_change(
                ConfChange(ConfChangeType.REMOVE_NODE, 0x77), timeout_s=5.0
            )
            assert conf.learners == ()
            assert len(conf.voters) == 3

    run(main)


def test_conf_change_refused_by_the_state_machine_is_not_taken_by_raft(tmp_path: Path) -> None:
    """A committed conf change the membership rules refused leaves raft's configuration alone.

    Otherwise raft's voters and the member list would disagree (etcd skips such changes too).
    """

    async def main() -> None:
        async with cluster(tmp_path) as c:
            lead = await c.leader()
            voters_before = lead.raft.conf_state.voters
            for m in c.members:
                m.machine.reject_conf_changes = True
            # Nobody wakes the proposer in this fake (the real applier fails it with the
            # membership error), so the proposal runs into its deadline.
            with pytest.raises(RequestTimeoutError):
                await lead.raft.propose_conf_change(
                    ConfChange(ConfChangeType.REMOVE_NODE, voters_before[0]), timeout_s=0.5
                )
            await c.propose(b"after", via=lead)
            await c.converge()
            for m in c.members:
                assert m.raft.conf_state.voters == voters_before
                assert m.raft.conf_state.learners == ()

    run(main)
