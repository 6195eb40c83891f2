"""Failover on a real 3-member cluster: calls, a watch and a lease survive losing the member
the client is talking to."""

from __future__ import annotations

import asyncio
import signal
from collections.abc import Callable
from typing import Any

import pytest

from kvorum.client import AsyncClient, DeadlineExceededError, Event, EventType
from kvorum.testing import Cluster

StartCluster = Callable[[int], Cluster]


def _index_of(cluster: Cluster, url: str) -> int:
    return cluster.endpoints.index(url)


def test_calls_fail_over_watch_resumes_and_lease_survives(
    server: str,
    start_cluster: StartCluster,
    arun: Callable[..., Any],
) -> None:
    """One cluster for the three checks (a 3-member start costs seconds): kill the client's
    member while a watch runs and a lease is kept alive, write through the survivors, restart
    it, and check that reads and writes went on, the watch saw every revision exactly once,
    and the lease never expired."""
    cluster = start_cluster(3)

    async def body() -> None:
        async with (
            AsyncClient(cluster.endpoints, timeout_s=10.0) as c,
            AsyncClient(cluster.endpoints, timeout_s=10.0) as writer,
        ):
            first = (await c.put("fo/k", b"0")).header.revision
            lease = await c.grant(3)
            async with c.keep_alive(lease.id) as ka:
                await c.put("fo/leased", b"x", lease=lease.id)
                seen: list[Event] = []

                async def watch_all() -> None:
                    async for event in c.watch("fo/", prefix=True, start_revision=first):
                        seen.append(event)
                        if event.kv.key == b"fo/last":
                            return

                watcher = asyncio.create_task(watch_all())
                await asyncio.sleep(0.2)
                written = [first]
                for i in range(5):
                    written.append((await writer.put(f"fo/w{i}", b"a")).header.revision)

                victim = _index_of(cluster, c.current_endpoint)
                writer.pool.current = (victim + 1) % 3  # the writer stays off the victim
                await asyncio.to_thread(cluster.kill, victim, signal.SIGKILL)

                # The next call goes to another endpoint, for reads and for writes.
                assert (await c.get("fo/k")).value == b"0"
                assert _index_of(cluster, c.current_endpoint) != victim
                written.append((await c.put("fo/k", b"1")).header.revision)
                for i in range(5, 10):
                    written.append((await writer.put(f"fo/w{i}", b"b")).header.revision)

                # Longer than the lease's TTL with the member down: the keep-alive moved too.
                await asyncio.sleep(4.0)
                ttl = await c.time_to_live(lease.id, keys=True)
                assert ttl.ttl_s > 0, ttl
                assert ttl.keys == (b"fo/leased",)
                assert ka.running and ka.error is None

                await asyncio.to_thread(cluster.restart, victim)
                for i in range(10, 15):
                    written.append((await writer.put(f"fo/w{i}", b"c")).header.revision)
                written.append((await writer.put("fo/last", b"")).header.revision)
                await asyncio.wait_for(watcher, 15.0)

            revisions = [e.revision for e in seen]
            # The leased key's put sits between `first` and the writer's puts.
            assert revisions == sorted(set(revisions)), "an event repeated or came out of order"
            assert set(written) <= set(revisions), f"missed: {set(written) - set(revisions)}"
            assert all(e.type is EventType.PUT for e in seen)
            assert revisions[0] == first

            # A write that reached a member and then timed out is never repeated elsewhere.
            # The member paused is a follower: what is checked is the client's choice, not how
            # fast the others elect a leader on a loaded machine.
            leader_id = (await c.status(cluster.endpoints[0])).leader
            member_ids = [(await c.status(url)).header.member_id for url in cluster.endpoints]
            paused = next(i for i, member_id in enumerate(member_ids) if member_id != leader_id)
            c.pool.current = paused
            await asyncio.to_thread(cluster.kill, paused, signal.SIGSTOP)
            try:
                with pytest.raises(DeadlineExceededError):
                    await c.put("fo/once", b"x", timeout_s=1.0)
                assert _index_of(cluster, c.current_endpoint) == paused
                # A read, on the other hand, gives up on the hung member and asks another.
                assert (await c.get("fo/k", timeout_s=4.0)).value == b"1"
                assert _index_of(cluster, c.current_endpoint) != paused
            finally:
                await asyncio.to_thread(cluster.kill, paused, signal.SIGCONT)

            # Leadership moves to the member asked for (the request goes to the leader).
            members = await c.member_list()
            assert sorted(m.name for m in members) == ["infra0", "infra1", "infra2"]
            leader = (await c.status(cluster.endpoints[(paused + 1) % 3])).leader
            paused_id = (await c.status(cluster.endpoints[paused])).header.member_id
            target = next(m.id for m in members if m.id not in (leader, paused_id))
            await c.move_leader(target)
            assert (await c.status(cluster.endpoints[(paused + 1) % 3])).leader == target

    arun(body(), 60.0)
