"""The Lock and Election servicers in one event loop, over a real store and watch hub.

`InProcessMember` is the smallest member the two services stand on: an `MvccStore` with a
lease set, every write published to a real `WatchService` (whose catch-up task runs), leases
revoked by deleting their keys in one txn. The servicers are called directly with a context
whose `abort` raises, so each test drives exact interleavings -- which waiter is woken by
which deletion, what a cancelled waiter leaves behind -- that the end-to-end tests can only
reach by timing.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine
from pathlib import Path
from typing import Any, TypeVar

import grpc
import pytest

from kvorum.api import validate
from kvorum.api.election import (
    ElectionNoLeaderError,
    ElectionNotLeaderError,
    ElectionServicer,
    MissingLeaderKeyError,
)
from kvorum.api.errors import status_of
from kvorum.api.lock import (
    LocalClient,
    LockServicer,
    SessionExpiredError,
    contender_key,
    prefix_end,
)
from kvorum.api.member import Header
from kvorum.api.pb.v3electionpb import v3election_pb2 as epb
from kvorum.api.pb.v3lockpb import v3lock_pb2 as lpb
from kvorum.api.watch import WatchService
from kvorum.backend import Backend
from kvorum.mvcc import (
    DeleteRangeRequest,
    DeleteRangeResponse,
    MvccStore,
    PutRequest,
    RangeRequest,
    RangeResponse,
    TxnRequest,
    TxnResponse,
)
from kvorum.watch import WatchHub

T = TypeVar("T")
TEST_TIMEOUT_S = 20.0
SETTLE_S = 0.2  # long enough for any wake-up already due to have happened


class Aborted(Exception):
    def __init__(self, code: grpc.StatusCode, details: str) -> None:
        super().__init__(code, details)
        self.code = code
        self.details = details


class Context:
    """The part of `grpc.aio.ServicerContext` the servicers use."""

    async def abort(self, code: grpc.StatusCode, details: str) -> None:
        raise Aborted(code, details)


class InProcessMember:
    def __init__(self, path: Path) -> None:
        self.backend = Backend(str(path / "db"))
        self.leases: set[int] = set()
        self.store = MvccStore(self.backend, lease_exists=self.leases.__contains__)
        self.watch = WatchService(WatchHub(self.store.current_revision), self.store)
        self._lease_ids = itertools.count(0x1000)

    def header(self) -> Header:
        return Header(1, 2, self.store.current_revision, 3)

    def _written(self, events: Any) -> None:
        self.backend.batch.commit()
        self.watch.publish_events(events)

    async def range(self, req: RangeRequest, serializable: bool) -> RangeResponse:
        return self.store.range(req)

    async def txn(self, req: TxnRequest, serializable: bool) -> TxnResponse:
        resp = self.store.txn(req)
        self._written(resp.events)
        return resp

    async def delete_range(self, req: DeleteRangeRequest) -> DeleteRangeResponse:
        resp = self.store.delete_range(req)
        self._written(resp.events)
        return resp

    async def lease_grant(self, lease_id: int, ttl_s: int) -> tuple[int, int, int]:
        granted = lease_id or next(self._lease_ids)
        self.leases.add(granted)
        return self.store.current_revision, granted, ttl_s

    async def lease_revoke(self, lease_id: int) -> int:
        self.leases.discard(lease_id)
        keys = [kv.key for kv in self.store.iter_live() if kv.lease == lease_id]
        resp = self.store.txn(TxnRequest(success=tuple(DeleteRangeRequest(k) for k in keys)))
        self._written(resp.events)
        return resp.revision

    def keys(self, prefix: bytes) -> list[bytes]:
        found = self.store.range(RangeRequest(prefix, prefix_end(prefix)))
        return [kv.key for kv in found.kvs]


class Harness:
    def __init__(self, member: InProcessMember, limits: validate.Limits) -> None:
        self.member = member
        self.client = LocalClient(member, member, member.watch, limits)  # type: ignore[arg-type]
        self.lock = LockServicer(self.client)
        self.election = ElectionServicer(self.client)

    async def grant(self) -> int:
        return (await self.member.lease_grant(0, 60))[1]

    def locking(self, name: bytes, lease: int) -> asyncio.Task[Any]:
        coro = self.lock.Lock(lpb.LockRequest(name=name, lease=lease), Context())  # type: ignore[arg-type]
        return asyncio.get_running_loop().create_task(coro)

    async def unlock(self, key: bytes) -> None:
        await self.lock.Unlock(lpb.UnlockRequest(key=key), Context())  # type: ignore[arg-type]


def run(
    tmp_path: Path,
    body: Callable[[Harness], Awaitable[None]],
    limits: validate.Limits | None = None,
) -> None:
    async def main() -> None:
        member = InProcessMember(tmp_path)
        sync = asyncio.get_running_loop().create_task(member.watch.run())
        try:
            await body(Harness(member, limits or validate.Limits()))
        finally:
            sync.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await sync
            member.backend.close()

    asyncio.run(asyncio.wait_for(main(), TEST_TIMEOUT_S))


async def aborted(call: Coroutine[Any, Any, Any]) -> tuple[grpc.StatusCode, str]:
    with pytest.raises(Aborted) as caught:
        await call
    return caught.value.code, caught.value.details


def test_contender_keys_and_prefix_ends_are_etcds() -> None:
    # Go's %x: lowercase hex, no padding.
    assert contender_key(b"m/", 0x694D7A8B0C1D2E3F) == b"m/694d7a8b0c1d2e3f"
    assert contender_key(b"m/", 0xABC) == b"m/abc"
    assert prefix_end(b"m/") == b"m0"
    assert prefix_end(b"a\xff") == b"b"
    assert prefix_end(b"\xff\xff") == b"\x00"


def test_errors_are_unknown_with_etcds_texts() -> None:
    expected = {
        ElectionNotLeaderError: "election: not leader",
        ElectionNoLeaderError: "election: no leader",
        MissingLeaderKeyError: '"leader" field must be provided',
        SessionExpiredError: "mutex: session is expired",
    }
    for cls, text in expected.items():
        spec = status_of(cls())
        assert spec is not None and (spec.code, spec.text) == (grpc.StatusCode.UNKNOWN, text)


def test_waiters_get_the_lock_in_queue_order(tmp_path: Path) -> None:
    async def body(h: Harness) -> None:
        a, b, c = await h.grant(), await h.grant(), await h.grant()
        first = await h.locking(b"q", a)
        second, third = h.locking(b"q", b), h.locking(b"q", c)
        await asyncio.sleep(SETTLE_S)
        assert h.member.keys(b"q/") == [contender_key(b"q/", x) for x in (a, b, c)]
        assert not second.done() and not third.done()
        await h.unlock(first.key)
        got = await asyncio.wait_for(second, TEST_TIMEOUT_S)
        assert got.key == contender_key(b"q/", b)
        # The header is the read that found the way clear: at or after the unlock.
        assert got.header.revision == h.member.store.current_revision
        await asyncio.sleep(SETTLE_S)
        assert not third.done()
        await h.unlock(got.key)
        assert (await asyncio.wait_for(third, TEST_TIMEOUT_S)).key == contender_key(b"q/", c)

    run(tmp_path, body)


def test_a_waiter_leaving_the_middle_of_the_queue_wakes_nobody_early(tmp_path: Path) -> None:
    async def body(h: Harness) -> None:
        a, b, c = await h.grant(), await h.grant(), await h.grant()
        first = await h.locking(b"q", a)
        second, third = h.locking(b"q", b), h.locking(b"q", c)
        await asyncio.sleep(SETTLE_S)
        # c watches b's key; b goes with its lease: c must look again and wait for a.
        await h.member.lease_revoke(b)
        await asyncio.sleep(SETTLE_S)
        assert not third.done()
        await h.unlock(first.key)
        assert (await asyncio.wait_for(third, TEST_TIMEOUT_S)).key == contender_key(b"q/", c)
        # b's wait ended too, and b's key is gone: no lock for b.
        with pytest.raises(Aborted) as caught:
            await asyncio.wait_for(second, TEST_TIMEOUT_S)
        assert caught.value.details == "mutex: session is expired"

    run(tmp_path, body)


def test_a_cancelled_waiter_takes_its_key_away(tmp_path: Path) -> None:
    async def body(h: Harness) -> None:
        a, b = await h.grant(), await h.grant()
        await h.locking(b"q", a)
        waiter = h.locking(b"q", b)
        await asyncio.sleep(SETTLE_S)
        assert len(h.member.keys(b"q/")) == 2
        waiter.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await waiter
        await asyncio.sleep(SETTLE_S)  # the cleanup runs on its own task
        assert h.member.keys(b"q/") == [contender_key(b"q/", a)]
        assert h.member.watch.hub.watcher_count() == 0  # and its watcher is gone

    run(tmp_path, body)


def test_a_lock_name_too_large_for_a_request_fails_as_a_put_would(tmp_path: Path) -> None:
    async def body(h: Harness) -> None:
        lease = await h.grant()
        code, text = await aborted(h.locking(b"n" * 200, lease))
        assert (code, text) == (grpc.StatusCode.UNKNOWN, "etcdserver: request is too large")
        assert h.member.store.current_revision == 1  # nothing was written

    run(tmp_path, body, validate.Limits(max_request_bytes=128))


def test_a_wait_from_compacted_history_reports_it_instead_of_failing(tmp_path: Path) -> None:
    async def body(h: Harness) -> None:
        lease = await h.grant()
        held = await h.locking(b"q", lease)
        for i in range(3):
            await h.member.txn(TxnRequest(success=(PutRequest(b"x%d" % i),)), False)
        assert h.member.store.current_revision == 5
        h.member.store.compact(5)
        h.member.backend.batch.commit()
        # A watch from before the compaction is cancelled: wait_delete says so, so that
        # wait_deletes reads again rather than fail the Lock.
        assert await h.client.wait_delete(held.key, 2) is False

    run(tmp_path, body)


def test_campaign_proclaim_resign_and_observe(tmp_path: Path) -> None:
    async def body(h: Harness) -> None:
        one, two = await h.grant(), await h.grant()
        ctx: Any = Context()
        code, text = await aborted(h.election.Leader(epb.LeaderRequest(name=b"e"), ctx))
        assert (code, text) == (grpc.StatusCode.UNKNOWN, "election: no leader")
        won = await h.election.Campaign(epb.CampaignRequest(name=b"e", lease=one, value=b"a"), ctx)
        observed: list[Any] = []
        stream: AsyncIterator[Any] = h.election.Observe(epb.LeaderRequest(name=b"e"), ctx)

        async def observe() -> None:
            async for response in stream:
                observed.append((response.kv.key, response.kv.value))

        observer = asyncio.get_running_loop().create_task(observe())
        contender = asyncio.get_running_loop().create_task(
            h.election.Campaign(epb.CampaignRequest(name=b"e", lease=two, value=b"b"), ctx)
        )
        await asyncio.sleep(SETTLE_S)
        assert not contender.done()
        await h.election.Proclaim(epb.ProclaimRequest(leader=won.leader, value=b"a2"), ctx)
        await h.election.Resign(epb.ResignRequest(leader=won.leader), ctx)
        second = await asyncio.wait_for(contender, TEST_TIMEOUT_S)
        assert second.leader.key == contender_key(b"e/", two)
        code, text = await aborted(
            h.election.Proclaim(epb.ProclaimRequest(leader=won.leader, value=b"x"), ctx)
        )
        assert (code, text) == (grpc.StatusCode.UNKNOWN, "election: not leader")
        await asyncio.sleep(SETTLE_S)
        observer.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await observer
        key_one, key_two = contender_key(b"e/", one), contender_key(b"e/", two)
        assert observed == [(key_one, b"a"), (key_one, b"a2"), (key_two, b"b")]

    run(tmp_path, body)
