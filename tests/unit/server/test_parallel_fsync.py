"""Thesis §10.2.1: the leader replicates while its own fsync runs; nobody else does."""

from __future__ import annotations

import asyncio
import threading
import time
from pathlib import Path

import pytest

from kvorum.raft import MessageType, Ready
from kvorum.server import StorageOptions
from tests.unit.server.helpers import Member, cluster, run

pytestmark = pytest.mark.timeout(60)

SLOW_FSYNC_S = 0.3
MARKER = b"marker"


def test_leader_sends_app_while_its_fsync_runs_and_followers_answer_after_theirs(
    tmp_path: Path,
) -> None:
    slow_ids: set[int] = set()
    lock = threading.Lock()

    def options_for(member_id: int) -> StorageOptions:
        def observe(took_s: float) -> None:
            del took_s
            with lock:
                slow = member_id in slow_ids
            if slow:
                time.sleep(SLOW_FSYNC_S)  # on the WAL's worker thread: save() returns late

        return StorageOptions(segment_size_bytes=256 * 1024, fsync_observer=observe)

    # (member, first entry index, last entry index, persist returned at)
    persists: list[tuple[int, int, int, float]] = []

    def record_persists(member: Member) -> None:
        storage = member.raft.storage
        real = storage.persist

        async def persist(rd: Ready) -> None:
            await real(rd)
            if rd.entries:
                entry = (member.id, rd.entries[0].index, rd.entries[-1].index, time.monotonic())
                persists.append(entry)

        storage.persist = persist  # type: ignore[method-assign]

    async def main() -> None:
        async with cluster(tmp_path, options_for=options_for) as c:
            lead = await c.leader()
            await c.propose(b"warm-up", via=lead)
            follower = next(m for m in c.members if m is not lead)
            for m in c.members:
                record_persists(m)
            with lock:
                slow_ids.update({lead.id, follower.id})
            started = time.monotonic()
            index = await c.propose(MARKER, via=lead)
            took_s = time.monotonic() - started
            # The write waited for at least one slow fsync (the leader's or the follower's
            # would each be enough to delay the commit for the slow pair).
            assert took_s >= SLOW_FSYNC_S * 0.9

            def persisted_at(member_id: int) -> float:
                return next(t for m, lo, hi, t in persists if m == member_id and lo <= index <= hi)

            app_arrivals = [
                d.at_s
                for d in c.network.delivered
                if d.msg.type == MessageType.APP
                and d.msg.frm == lead.id
                and any(e.index == index for e in d.msg.entries)
            ]
            assert app_arrivals, "no follower received the entry"
            # The leader's APP reached a follower before the leader's own fsync returned.
            assert min(app_arrivals) < persisted_at(lead.id) - SLOW_FSYNC_S / 2

            # The slow follower acknowledged the entry only after its own fsync returned
            # (its ack may still be on its way: the write needed only one slow member).
            def acks() -> list[float]:
                return [
                    d.at_s
                    for d in c.network.delivered
                    if d.msg.type == MessageType.APP_RESP
                    and d.msg.frm == follower.id
                    and not d.msg.reject
                    and d.msg.index >= index
                ]

            deadline = time.monotonic() + 5
            while not acks():
                assert time.monotonic() < deadline, "the slow follower never acknowledged"
                await asyncio.sleep(0.01)
            assert min(acks()) >= persisted_at(follower.id)

    run(main)
