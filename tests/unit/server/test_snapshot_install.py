"""Installing a leader's snapshot: the backend file is swapped for the leader's, and the
applier goes on from the snapshot's index with the leader's revision, members and hash.

A "member" here is one backend + mvcc + membership + applier + ``ApplyDriver`` in a temp dir,
fed raft entries the way the proposer builds them; the raft snapshot is made by the leader's
driver (``snapshot_data``) exactly as the RaftNode asks for it.
"""

from __future__ import annotations

import asyncio
import os
from dataclasses import dataclass
from pathlib import Path

import lmdb
import pytest

from kvorum.apply import (
    Applier,
    LeaseGrantRequest,
    LeaseRevokeRequest,
    Request,
    encode_payload,
)
from kvorum.backend import Backend, write_file_durably
from kvorum.lease import LeaseStore, Lessor
from kvorum.membership import AlarmStore, Member, MembershipStore
from kvorum.mvcc import MvccStore, PutRequest, RangeRequest
from kvorum.raft import ConfState, Entry, EntryType, Snapshot, SnapshotMetadata
from kvorum.server import Wait, encode_envelope
from kvorum.server.member import ApplyDriver, decode_snapshot_header
from kvorum.snap import Snapshotter

LEADER_ID = 0x1
JOINER_ID = 0x2


@dataclass
class Node:
    backend: Backend
    store: MvccStore
    membership: MembershipStore
    applier: Applier
    driver: ApplyDriver
    membership_changes: list[int]


def _node(directory: Path, members: tuple[int, ...]) -> Node:
    backend = Backend(str(directory / "member" / "snap" / "db"))
    store = MvccStore(backend)
    membership = MembershipStore(backend)
    for member_id in members:
        membership.add(Member(member_id, f"m{member_id}", (f"http://127.0.0.1:{member_id}",)))
    backend.sync()
    applier = Applier(backend, store, membership, AlarmStore(backend))
    changes: list[int] = []
    driver = ApplyDriver(applier, backend, Wait(), on_membership_change=lambda: changes.append(1))
    return Node(backend, store, membership, applier, driver, changes)


def _puts(first_index: int, count: int, prefix: str = "k") -> list[Entry]:
    return [
        Entry(
            2,
            first_index + n,
            EntryType.NORMAL,
            encode_envelope(1000 + first_index + n, encode_payload(
                PutRequest(f"{prefix}{n:04d}".encode(), b"v" * 100)
            )),
        )
        for n in range(count)
    ]  # fmt: skip


def _raft_snapshot(data: bytes, index: int, term: int = 2) -> Snapshot:
    return Snapshot(data, SnapshotMetadata(ConfState(voters=(LEADER_ID,)), index, term))


def test_backend_restored_from_another_backends_copy_has_its_hash(tmp_path: Path) -> None:
    async def main() -> None:
        leader = _node(tmp_path / "a", (LEADER_ID,))
        follower = _node(tmp_path / "b", (LEADER_ID, JOINER_ID))
        await leader.driver.apply(_puts(1, 50), None)
        await follower.driver.apply(_puts(1, 3, prefix="other"), None)
        assert leader.backend.hash() != follower.backend.hash()
        received = str(tmp_path / "b" / "received.db")
        leader.backend.batch.commit()
        with leader.backend.snapshot(chunk_bytes=4096) as copy:
            write_file_durably(received, copy)
        follower.backend.restore_from_file(received)
        assert follower.backend.hash() == leader.backend.hash()
        assert follower.backend.consistent_index() == (50, 2)
        assert not os.path.exists(received)  # consumed by the rename
        # The reopened environment takes writes, and they survive a close and reopen.
        follower.backend.set_consistent_index(51, 2)
        follower.backend.close()
        reopened = Backend(follower.backend.path)
        assert reopened.consistent_index() == (51, 2)
        reopened.close()
        leader.backend.close()

    asyncio.run(main())


def test_a_file_that_is_not_a_database_leaves_the_backend_untouched(tmp_path: Path) -> None:
    node = _node(tmp_path, (LEADER_ID,))
    asyncio.run(node.driver.apply(_puts(1, 5), None))
    before = node.backend.hash()
    bogus = tmp_path / "bogus.db"
    bogus.write_bytes(b"\x00" * 100)
    with pytest.raises(lmdb.Error):
        node.backend.restore_from_file(str(bogus))
    assert node.backend.hash() == before
    assert node.backend.consistent_index() == (5, 2)
    node.backend.close()


def test_follower_installs_the_leaders_snapshot_and_continues_in_step(tmp_path: Path) -> None:
    async def main() -> None:
        leader = _node(tmp_path / "a", (LEADER_ID, JOINER_ID))
        follower = _node(tmp_path / "b", (LEADER_ID,))
        await leader.driver.apply(_puts(1, 200), None)
        await follower.driver.apply(_puts(1, 10), None)  # fell behind at index 10
        data = await leader.driver.snapshot_data()
        assert decode_snapshot_header(data) == (200, 2)

        await follower.driver.apply((), _raft_snapshot(data, 200))
        assert follower.applier.applied_index == 200
        assert follower.backend.consistent_index() == (200, 2)
        assert follower.store.current_revision == leader.store.current_revision == 201
        assert follower.backend.hash() == leader.backend.hash()
        # Members come from the leader's file, and the transport was told to follow them.
        assert [m.id for m in follower.membership.members()] == [LEADER_ID, JOINER_ID]
        assert follower.membership_changes == [1]
        got = follower.store.range(RangeRequest(b"k0199"))
        assert [kv.value for kv in got.kvs] == [b"v" * 100]
        leftovers = [p for p in os.listdir(os.path.dirname(follower.backend.path))
                     if p.endswith(".snap.db")]  # fmt: skip
        assert leftovers == []

        # Entries the snapshot covers are skipped; later ones apply with the right revision.
        await follower.driver.apply(_puts(150, 51), None)
        assert follower.store.current_revision == 201
        more = _puts(201, 5, prefix="z")
        await leader.driver.apply(more, None)
        await follower.driver.apply(more, None)
        assert follower.store.current_revision == leader.store.current_revision == 206
        assert follower.store.hash_kv(0) == leader.store.hash_kv(0)
        assert follower.backend.hash() == leader.backend.hash()

        # A restart on the same files: the installed db is the one that opens.
        follower.backend.close()
        reopened = Backend(follower.backend.path)
        assert reopened.consistent_index() == (205, 2)
        assert reopened.hash() == leader.backend.hash()
        reopened.close()
        leader.backend.close()

    asyncio.run(main())


def test_own_snapshot_at_start_is_not_installed_again(tmp_path: Path) -> None:
    async def main() -> None:
        node = _node(tmp_path, (LEADER_ID,))
        await node.driver.apply(_puts(1, 20), None)
        data = await node.driver.snapshot_data()
        await node.driver.apply(_puts(21, 5), None)
        inode = os.stat(node.backend.path).st_ino
        await node.driver.apply((), _raft_snapshot(data, 20))
        assert os.stat(node.backend.path).st_ino == inode  # no swap
        assert node.applier.applied_index == 25
        node.backend.close()

    asyncio.run(main())


@pytest.mark.parametrize(
    ("data", "why"),
    [
        ((7).to_bytes(8, "big") + (2).to_bytes(8, "big"), "carries no database"),
        (b"", "carries no database"),
    ],
)
def test_a_snapshot_without_a_database_stops_the_member(
    tmp_path: Path, data: bytes, why: str
) -> None:
    node = _node(tmp_path, (LEADER_ID,))
    with pytest.raises(RuntimeError, match=why):
        asyncio.run(node.driver.apply((), _raft_snapshot(data, 7)))
    assert node.applier.applied_index == 0
    node.backend.close()


def test_a_database_behind_its_snapshot_is_refused(tmp_path: Path) -> None:
    async def main() -> None:
        leader = _node(tmp_path / "a", (LEADER_ID,))
        follower = _node(tmp_path / "b", (LEADER_ID,))
        await leader.driver.apply(_puts(1, 30), None)
        data = await leader.driver.snapshot_data()  # the db is at 30
        with pytest.raises(RuntimeError, match="at index 30 only"):
            await follower.driver.apply((), _raft_snapshot(data, 40))
        assert follower.applier.applied_index == 0
        leader.backend.close()
        follower.backend.close()

    asyncio.run(main())


def test_a_database_past_its_snapshot_index_is_installed_at_its_own_index(
    tmp_path: Path,
) -> None:
    """A leader that snapshots while replaying its WAL holds more than the snapshot's index."""

    async def main() -> None:
        leader = _node(tmp_path / "a", (LEADER_ID,))
        follower = _node(tmp_path / "b", (LEADER_ID,))
        await leader.driver.apply(_puts(1, 30), None)
        data = await leader.driver.snapshot_data()
        await follower.driver.apply((), _raft_snapshot(data, 25))
        assert follower.applier.applied_index == 30
        await follower.driver.apply(_puts(26, 5), None)  # the log replays 26..30: skipped
        assert follower.store.current_revision == 31
        assert follower.backend.hash() == leader.backend.hash()
        leader.backend.close()
        follower.backend.close()

    asyncio.run(main())


def _leased(directory: Path) -> tuple[Backend, Lessor, Applier]:
    backend = Backend(str(directory / "db"))
    lessor = Lessor(min_ttl_s=1, sink=LeaseStore(backend))
    store = MvccStore(backend, lease_exists=lessor.exists)
    applier = Applier(backend, store, MembershipStore(backend), AlarmStore(backend), lessor=lessor)
    return backend, lessor, applier


def _entry(index: int, request: Request) -> Entry:
    return Entry(2, index, EntryType.NORMAL, encode_envelope(index, encode_payload(request)))


def test_restore_rebuilds_leases_and_their_keys_from_the_new_database(tmp_path: Path) -> None:
    a_backend, _a_lessor, a_applier = _leased(tmp_path / "a")
    b_backend, b_lessor, b_applier = _leased(tmp_path / "b")
    a_applier.apply(
        [
            _entry(1, LeaseGrantRequest(42, 60)),
            _entry(2, PutRequest(b"held", b"v", lease=42)),
            _entry(3, PutRequest(b"free", b"v")),
        ]
    )
    b_applier.apply([_entry(1, LeaseGrantRequest(7, 60))])  # state the snapshot supersedes
    a_backend.batch.commit()
    received = str(tmp_path / "b" / "received.db")
    with a_backend.snapshot() as copy:
        write_file_durably(received, copy)
    b_backend.restore_from_file(received)
    assert b_applier.restore() == 3
    assert not b_lessor.exists(7)
    assert b_lessor.exists(42) and b_lessor.keys(42) == (b"held",)
    # The lease bucket is written through the reopened environment: a revoke applies alike.
    revoke = [_entry(4, LeaseRevokeRequest(42))]
    assert a_applier.apply(revoke).results == b_applier.apply(revoke).results
    assert b_backend.hash() == a_backend.hash()
    a_backend.close()
    b_backend.close()


def test_a_crash_before_the_swap_installs_again_from_the_snapshot_file(tmp_path: Path) -> None:
    """The follower persists the raft snapshot (db inside) before it answers the leader; a
    crash before the swap restarts with the old db behind that file, and installs it then."""

    async def main() -> None:
        leader = _node(tmp_path / "a", (LEADER_ID,))
        follower = _node(tmp_path / "b", (LEADER_ID,))
        await leader.driver.apply(_puts(1, 40), None)
        snapshotter = Snapshotter(tmp_path / "b" / "member" / "snap")
        snapshotter.save(_raft_snapshot(await leader.driver.snapshot_data(), 40))
        # What the interrupted attempt left: a partly written received db.
        stale = tmp_path / "b" / "member" / "snap" / "0000000000000005.snap.db"
        stale.write_bytes(b"torn")
        loaded = snapshotter.load()  # the restart reads the snapshot file back
        assert loaded is not None
        await follower.driver.apply((), loaded)
        assert follower.applier.applied_index == 40
        assert follower.backend.hash() == leader.backend.hash()
        assert not stale.exists()
        leader.backend.close()
        follower.backend.close()

    asyncio.run(main())
