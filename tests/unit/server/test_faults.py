"""Writers against a cluster whose links are cut and whose members are stopped and restarted.

Safety, checked at the end: every member applied the same history, and every write that
was acknowledged is in it (nothing acknowledged is lost, whatever the faults). The faults
come from a seeded ``random.Random``; a failure prints the seed.
"""

from __future__ import annotations

import asyncio
import os
import random
import time
from pathlib import Path

import pytest

from kvorum.server import StorageOptions
from kvorum.server.errors import ServerError
from tests.unit.server.helpers import Cluster, cluster, run

pytestmark = pytest.mark.timeout(60)

LONG = os.environ.get("KVORUM_LONG") == "1"
SEED = int(os.environ.get("KVORUM_SEED", "7"))


async def faults(c: Cluster, rng: random.Random, duration_s: float) -> None:
    deadline = time.monotonic() + duration_s
    ids = [m.id for m in c.members]
    while time.monotonic() < deadline:
        await asyncio.sleep(rng.uniform(0.05, 0.25))
        action = rng.random()
        if action < 0.35:
            a, b = rng.sample(ids, 2)
            c.network.cut.add(frozenset((a, b)))
        elif action < 0.65:
            c.network.cut.clear()
        else:
            member = rng.choice(c.members)
            if member.up and len(c.running()) == len(c.members):
                await member.stop()
            elif not member.up:
                await member.start()
    c.network.cut.clear()
    for member in c.members:
        if not member.up:
            await member.start()


def test_acknowledged_writes_survive_cuts_and_restarts(tmp_path: Path) -> None:
    rng = random.Random(SEED)
    duration_s = 20.0 if LONG else 3.0
    opts = StorageOptions(snapshot_count=50, catch_up_entries=20, segment_size_bytes=32 * 1024)
    acknowledged: set[bytes] = set()

    async def writer(c: Cluster, w: int, stop_at: float) -> None:
        i = 0
        while time.monotonic() < stop_at:
            up = c.running()
            if not up:
                await asyncio.sleep(0.01)
                continue
            member = up[(w + i) % len(up)]
            payload = b"w%d-%d" % (w, i)
            i += 1
            node = member.node
            if node is None:
                continue
            try:
                await node.propose(payload, timeout_s=0.5)
            except ServerError:
                continue  # outcome unknown: it may or may not be applied
            acknowledged.add(payload)

    async def main() -> None:
        async with cluster(tmp_path, options=opts) as c:
            await c.leader()
            stop_at = time.monotonic() + duration_s
            await asyncio.gather(
                faults(c, rng, duration_s), *(writer(c, w, stop_at) for w in range(4))
            )
            await c.leader(timeout_s=15)
            await c.propose(b"final")
            await c.converge(timeout_s=20)
            history = c.members[0].sm.values
            for m in c.members[1:]:
                assert m.sm.values == history, f"seed {SEED}: histories differ at {m.id:x}"
            lost = acknowledged - set(history)
            assert not lost, f"seed {SEED}: acknowledged writes lost: {sorted(lost)[:5]}"
            assert len(acknowledged) > 20, f"seed {SEED}: too few writes succeeded to judge"

    run(main, timeout_s=55)
