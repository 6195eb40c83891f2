"""kvorum's own Python client (``kvorum.client``: Lock and Election over the two services)
against real etcd and against kvorum: the same story must unfold on both."""

from __future__ import annotations

import asyncio
import contextlib

from kvorum.client import AsyncClient
from kvorum.testing import Cluster
from tests.e2e.lockelect.helpers import Transcript

STORY_TIMEOUT_S = 30.0
SETTLE_S = 0.3
POLL_S = 0.05


async def _story(endpoints: list[str]) -> list[str]:
    t = Transcript()
    out: list[str] = []
    async with AsyncClient(endpoints) as a, AsyncClient(endpoints) as b:
        first = a.lock("pylock", ttl_s=10)
        out.append(f"a holds {t.key(await first.acquire())}")
        second = b.lock("pylock", ttl_s=10)
        waiting = asyncio.create_task(second.acquire())
        await asyncio.sleep(SETTLE_S)
        out.append(f"b waiting {not waiting.done()}")
        await first.release()
        out.append(f"b holds {t.key(await asyncio.wait_for(waiting, STORY_TIMEOUT_S))}")
        await second.release()

        leader_a, leader_b = a.election("pyelection"), b.election("pyelection")
        await leader_a.campaign("v1", ttl_s=10)
        seen: list[str] = []

        async def observe() -> None:
            async for kv in b.election("pyelection").observe():
                seen.append(f"{t.key(kv.key)}={kv.value.decode()}")

        observer = asyncio.create_task(observe())
        campaign_b = asyncio.create_task(leader_b.campaign("v2", ttl_s=10))
        await asyncio.sleep(SETTLE_S)
        out.append(f"b campaigning {not campaign_b.done()}")
        await leader_a.proclaim("v1b")
        current = await a.election("pyelection").leader()
        out.append(f"leader {t.key(current.key)}={current.value.decode()}")
        await leader_a.resign()
        await asyncio.wait_for(campaign_b, STORY_TIMEOUT_S)
        current = await a.election("pyelection").leader()
        out.append(f"leader {t.key(current.key)}={current.value.decode()}")
        for _ in range(int(STORY_TIMEOUT_S / POLL_S)):  # until the observer saw v2
            if len(seen) >= 3:
                break
            await asyncio.sleep(POLL_S)
        observer.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await observer
        await leader_b.resign()
        out += [f"observed {line}" for line in seen]
    return out


def test_python_client_lock_and_election_behave_alike(pair: tuple[Cluster, Cluster]) -> None:
    etcd, kvorum = (
        asyncio.run(asyncio.wait_for(_story(c.endpoints), STORY_TIMEOUT_S)) for c in pair
    )
    assert etcd == [
        "a holds pylock/<lease-0>",
        "b waiting True",
        "b holds pylock/<lease-1>",
        "b campaigning True",
        "leader pyelection/<lease-2>=v1b",
        "leader pyelection/<lease-3>=v2",
        "observed pyelection/<lease-2>=v1",
        "observed pyelection/<lease-2>=v1b",
        "observed pyelection/<lease-3>=v2",
    ]
    assert kvorum == etcd
