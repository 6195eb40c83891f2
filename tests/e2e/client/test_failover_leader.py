"""Issue 6 on a real 3-member cluster: a lease kept alive across a leader failover, and a watch
that resumes across a restart of the member it is served by, without missing or repeating an
event."""

from __future__ import annotations

import asyncio
import signal
from collections.abc import Callable
from typing import Any

from kvorum.client import AsyncClient, Event
from kvorum.testing import Cluster

StartCluster = Callable[[int], Cluster]
LEASE_TTL_S = 3
# Longer than the lease's TTL: only a keep-alive that moved to the new leader saves it.
LEADERLESS_WAIT_S = 4.5
WATCH_DONE_TIMEOUT_S = 20.0


def test_lease_survives_leader_failover_and_watch_survives_member_restart(
    server: str,
    start_cluster: StartCluster,
    arun: Callable[..., Any],
) -> None:
    cluster = start_cluster(3)
    leader = cluster.wait_for_leader()
    # The watch is served by the leader alone, the lease kept alive (and writes made) through
    # a follower: killing the leader fails over the lease's leader, and restarting it restarts
    # the member under the watch, which must resume where it was.
    follower = (leader + 1) % 3

    async def body() -> None:
        async with (
            AsyncClient([cluster.endpoints[leader]], timeout_s=10.0) as watcher,
            AsyncClient([cluster.endpoints[follower]], timeout_s=10.0) as lessee,
            AsyncClient([cluster.endpoints[follower]], timeout_s=10.0) as writer,
        ):
            first = (await writer.put("lf/start", b"")).header.revision
            lease = await lessee.grant(LEASE_TTL_S)
            written = [first]
            seen: list[Event] = []

            async def watch_all() -> None:
                async for event in watcher.watch("lf/", prefix=True, start_revision=first):
                    seen.append(event)
                    if event.kv.key == b"lf/last":
                        return

            watching = asyncio.create_task(watch_all())
            async with lessee.keep_alive(lease.id) as ka:
                put = await lessee.put("lf/leased", b"x", lease=lease.id)
                written.append(put.header.revision)

                await asyncio.to_thread(cluster.kill, leader, signal.SIGKILL)
                await asyncio.to_thread(cluster.wait_for_leader, 30.0, exclude=[leader])
                await asyncio.sleep(LEADERLESS_WAIT_S)
                ttl = await lessee.time_to_live(lease.id, keys=True)
                assert ttl.ttl_s > 0, (ttl, ka.running, ka.error)
                assert ttl.keys == (b"lf/leased",)
                assert ka.running and ka.error is None
                # Written while the watch's member is down: the resumed watch must see them.
                for i in range(5):
                    written.append((await writer.put(f"lf/a{i}", b"a")).header.revision)

                await asyncio.to_thread(cluster.restart, leader)
                for i in range(5):
                    written.append((await writer.put(f"lf/b{i}", b"b")).header.revision)
                written.append((await writer.put("lf/last", b"")).header.revision)
                await asyncio.wait_for(watching, WATCH_DONE_TIMEOUT_S)
                assert (await lessee.time_to_live(lease.id)).ttl_s > 0

            revisions = [e.revision for e in seen]
            assert revisions == written, (
                f"missed {sorted(set(written) - set(revisions))}, "
                f"unexpected {sorted(set(revisions) - set(written))}, seen {revisions}"
            )

    arun(body(), 90.0)
