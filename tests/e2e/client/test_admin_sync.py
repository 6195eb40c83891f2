"""Cluster, maintenance, lock and election helpers, and the synchronous client."""

from __future__ import annotations

import asyncio
import io
from collections.abc import Callable
from typing import Any

import pytest

from kvorum.client import (
    AsyncClient,
    Client,
    ElectionNoLeaderError,
    LearnerNotReadyError,
    MemberNotFoundError,
    TxnResult,
)
from kvorum.testing import Cluster, free_ports


def test_cluster_and_maintenance(cluster1: Cluster, arun: Callable[..., Any]) -> None:
    async def body() -> None:
        async with AsyncClient(cluster1.endpoints) as c:
            (member,) = await c.member_list()
            assert member.name == "infra0"
            assert member.client_urls == (cluster1.endpoints[0],)
            status = await c.status(cluster1.endpoints[0])
            assert status.leader == member.id == status.header.member_id
            assert status.db_size_bytes > 0
            await c.put("m/k", b"v")
            h1 = await c.hash_kv()
            assert h1 == await c.hash_kv()
            await c.put("m/k", b"w")
            assert (await c.hash_kv()).hash != h1.hash
            assert await c.alarms() == ()
            await c.defragment()
            buf = io.BytesIO()
            size = await c.snapshot(buf)
            assert size == len(buf.getvalue()) > status.db_size_in_use_bytes // 2
            with pytest.raises(MemberNotFoundError):
                await c.member_remove(member.id + 1)

            # A learner that never starts: added, renamed in place, refused promotion, removed.
            peer = f"http://127.0.0.1:{free_ports(1)[0]}"
            learner = await c.member_add([peer], is_learner=True)
            assert learner.is_learner and learner.peer_urls == (peer,)
            moved = f"http://127.0.0.1:{free_ports(1)[0]}"
            updated = {m.id: m for m in await c.member_update(learner.id, [moved])}
            assert updated[learner.id].peer_urls == (moved,)
            with pytest.raises(LearnerNotReadyError):
                await c.member_promote(learner.id)
            remaining = await c.member_remove(learner.id)
            assert [m.id for m in remaining] == [member.id]

    arun(body())


def test_lock_excludes_and_election_follows_the_leader(
    cluster1: Cluster, arun: Callable[..., Any]
) -> None:
    async def body() -> None:
        async with AsyncClient(cluster1.endpoints) as c:
            order: list[str] = []

            async def holder(name: str) -> None:
                async with c.lock("lk", ttl_s=5):
                    order.append(f"{name}+")
                    await asyncio.sleep(0.2)
                    order.append(f"{name}-")

            await asyncio.gather(holder("a"), holder("b"))
            # Never two holders at once: each acquire is followed by its own release.
            assert order in (["a+", "a-", "b+", "b-"], ["b+", "b-", "a+", "a-"])

            with pytest.raises(ElectionNoLeaderError):
                await c.election("el").leader()
            first, second = c.election("el"), c.election("el")
            await first.campaign("one", ttl_s=5)
            assert (await first.leader()).value == b"one"
            observed: list[bytes] = []

            async def observe() -> None:
                async for kv in second.observe():
                    observed.append(kv.value)
                    if kv.value == b"two":
                        return

            watcher = asyncio.create_task(observe())
            contender = asyncio.create_task(second.campaign("two", ttl_s=5))
            await asyncio.sleep(0.2)
            assert not contender.done()  # waits while "one" leads
            await first.proclaim("one'")
            await first.resign()
            await asyncio.wait_for(contender, 5.0)
            await asyncio.wait_for(watcher, 5.0)
            # The observer may start after the proclamation under load; it ends on "two".
            assert observed[0] in (b"one", b"one'") and observed[-1] == b"two"
            assert (await second.leader()).value == b"two"
            await second.resign()

    arun(body())


def test_sync_client(cluster1: Cluster) -> None:
    with Client(cluster1.endpoints, timeout_s=5.0) as c:
        rev = c.put("s/k", b"1").header.revision
        assert c.get("s/k").value == b"1"
        result = c.txn().if_(c.value("s/k") == b"1").then(c.put_op("s/k", b"2")).commit()
        assert isinstance(result, TxnResult) and result.succeeded
        with c.watch("s/k", start_revision=rev) as watch:
            values = [next(watch).kv.value, next(watch).kv.value]
        assert values == [b"1", b"2"]
        lease = c.grant(10)
        with c.keep_alive(lease.id) as ka:
            assert ka.inner.ttl_s == 10
        with c.lock("s/lock", ttl_s=5) as held:
            assert held.inner.key is not None
        assert c.delete("s/k").deleted == 1
