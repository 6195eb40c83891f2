"""Watches and leases against a real 1-member server."""

from __future__ import annotations

import asyncio
import http.client
import urllib.error
import urllib.request
from collections.abc import Callable
from typing import Any

import pytest

from kvorum.client import AsyncClient, CompactedError, Event, EventType, LeaseNotFoundError
from kvorum.testing import Cluster


def test_watch_from_now_sees_puts_and_deletes_with_prev_kv(
    cluster1: Cluster, arun: Callable[..., Any]
) -> None:
    async def body() -> None:
        async with AsyncClient(cluster1.endpoints) as c:
            await c.put("w1/old", b"before")
            seen: list[Event] = []
            watch = c.watch("w1/", prefix=True, prev_kv=True)

            async def consume() -> None:
                async for event in watch:
                    seen.append(event)
                    if len(seen) == 2:
                        return

            task = asyncio.create_task(consume())
            while watch.watch_id is None:  # created: later writes are guaranteed to be seen
                await asyncio.sleep(0.01)
            put = await c.put("w1/old", b"after")
            deleted = await c.delete("w1/old")
            await asyncio.wait_for(task, 5.0)
            assert [(e.type, e.revision) for e in seen] == [
                (EventType.PUT, put.header.revision),
                (EventType.DELETE, deleted.header.revision),
            ]
            assert seen[0].prev_kv is not None and seen[0].prev_kv.value == b"before"
            assert seen[1].prev_kv is not None and seen[1].prev_kv.value == b"after"

    arun(body())


def test_watch_history_and_compacted_start(cluster1: Cluster, arun: Callable[..., Any]) -> None:
    async def body() -> None:
        async with AsyncClient(cluster1.endpoints) as c:
            revs = [(await c.put("w2/k", str(i))).header.revision for i in range(3)]
            got = []
            async with c.watch("w2/k", start_revision=revs[0]) as watch:
                async for event in watch:
                    got.append((event.revision, event.kv.value))
                    if len(got) == 3:
                        break
            assert got == [(revs[0], b"0"), (revs[1], b"1"), (revs[2], b"2")]
            assert watch.next_revision == revs[2] + 1

            await c.compact(revs[2])
            with pytest.raises(CompactedError) as exc:
                async for _ in c.watch("w2/k", start_revision=revs[0]):
                    pass
            assert exc.value.compact_revision == revs[2]

    arun(body())


def test_lease_grant_ttl_keys_revoke(cluster1: Cluster, arun: Callable[..., Any]) -> None:
    async def body() -> None:
        async with AsyncClient(cluster1.endpoints) as c:
            lease = await c.grant(30)
            assert lease.ttl_s == 30 and lease.id in await c.leases()
            await c.put("l1/a", b"1", lease=lease.id)
            ttl = await c.time_to_live(lease.id, keys=True)
            assert (ttl.granted_ttl_s, ttl.keys) == (30, (b"l1/a",))
            assert 0 < ttl.ttl_s <= 30
            await c.revoke(lease.id)
            assert (await c.get("l1/a")).count == 0
            assert (await c.time_to_live(lease.id)).ttl_s == -1
            with pytest.raises(LeaseNotFoundError):
                await c.revoke(lease.id)

    arun(body())


def test_keep_alive_outlives_the_ttl_and_reports_a_revoked_lease(
    cluster1: Cluster, arun: Callable[..., Any]
) -> None:
    async def body() -> None:
        async with AsyncClient(cluster1.endpoints) as c:
            lease = await c.grant(2)
            await c.put("l2/a", b"1", lease=lease.id)
            async with c.keep_alive(lease.id) as ka:
                await asyncio.sleep(3.0)  # longer than the TTL
                assert (await c.get("l2/a")).count == 1
                assert ka.refreshes >= 3  # refreshed at ttl/3
                await c.revoke(lease.id)
                for _ in range(50):
                    if not ka.running:
                        break
                    await asyncio.sleep(0.1)
                assert isinstance(ka.error, LeaseNotFoundError)
            with pytest.raises(LeaseNotFoundError):
                await c.keep_alive(lease.id).start()

    arun(body())


def _server_watchers(url: str) -> int | None:
    """The server's count of open watchers (etcd's debugging metric, which kvorum exports
    too); None if the server lacks it or serves no HTTP on its client port."""
    try:
        with urllib.request.urlopen(url + "/metrics", timeout=5) as response:
            text = response.read().decode()
    except (http.client.HTTPException, urllib.error.URLError):
        return None
    for line in text.splitlines():
        if line.startswith("etcd_debugging_mvcc_watcher_total "):
            return int(float(line.split()[1]))
    return None


def test_leaving_the_loop_cancels_the_watch_on_the_server(
    cluster1: Cluster, arun: Callable[..., Any]
) -> None:
    url = cluster1.endpoints[0]
    if _server_watchers(url) is None:
        pytest.skip("the server does not export etcd_debugging_mvcc_watcher_total")

    async def body() -> None:
        async with AsyncClient(cluster1.endpoints) as c:
            rev = (await c.put("w3/k", b"v")).header.revision
            before = await asyncio.to_thread(_server_watchers, url)
            async for _ in c.watch("w3/k", start_revision=rev):
                assert await asyncio.to_thread(_server_watchers, url) == (before or 0) + 1
                break
            for _ in range(50):
                if await asyncio.to_thread(_server_watchers, url) == before:
                    return
                await asyncio.sleep(0.05)
            raise AssertionError("the server still has the watcher after the loop was left")

    arun(body())
