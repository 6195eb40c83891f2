"""Lock and Election's `LocalClient` reads as the caller: with auth on, each range it reads and
each watch it opens needs the caller's read permission (etcd's in-process client carries the
caller's token); with auth off, or outside a client call, nothing is checked."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from kvorum.api import validate
from kvorum.api.lock import LocalClient, first_created
from kvorum.api.pb.etcdserverpb import rpc_pb2
from kvorum.auth import AuthInfo, AuthStore, Permission, PermissionDeniedError, PermType
from kvorum.auth.context import ANONYMOUS, CALLER
from kvorum.auth.errors import UserEmptyError
from kvorum.mvcc import RangeRequest, RangeResponse
from kvorum.watch import CreateRequest


class ReadOnlyMember:
    """Counts the reads that got through to the member."""

    def __init__(self) -> None:
        self.reads: list[RangeRequest] = []

    async def range(self, req: RangeRequest, serializable: bool) -> RangeResponse:
        self.reads.append(req)
        return RangeResponse(revision=1, kvs=(), count=0)


class WatchesOpened:
    def __init__(self) -> None:
        self.opened = 0

    def open_stream(self) -> int:
        self.opened += 1
        return self.opened

    def create(self, stream_id: int, request: CreateRequest) -> None:
        pass

    def take(self, stream_id: int) -> list[Any]:
        return []

    async def wait(self, stream_id: int) -> None:
        await asyncio.sleep(3600)

    def close_stream(self, stream_id: int) -> None:
        pass


class Auth:
    def __init__(self, store: AuthStore) -> None:
        self.auth = store


def _store() -> AuthStore:
    store = AuthStore()
    store.user_add("root", b"h")
    store.user_grant_role("root", "root")
    store.user_add("reader", b"h")
    store.role_add("r")
    store.role_grant_permission("r", Permission(PermType.READ, b"/in/", b"/in0"))
    store.user_grant_role("reader", "r")
    store.user_add("nobody", b"h")
    store.auth_enable()
    return store


def _client(store: AuthStore) -> tuple[LocalClient, ReadOnlyMember, WatchesOpened]:
    member, watch = ReadOnlyMember(), WatchesOpened()
    client = LocalClient(
        member,  # type: ignore[arg-type]
        member,  # type: ignore[arg-type]
        watch,  # type: ignore[arg-type]
        validate.Limits(),
        auth=Auth(store),  # type: ignore[arg-type]
    )
    return client, member, watch


async def _read_and_watch(client: LocalClient, prefix: bytes) -> None:
    await client.range(first_created(prefix))
    async with client.watch(CreateRequest(key=prefix + b"k")):
        pass


def test_reads_and_watches_need_the_callers_read_permission() -> None:
    store = _store()
    client, member, watch = _client(store)

    async def scenario() -> None:
        CALLER.set(AuthInfo("reader", store.revision))
        await _read_and_watch(client, b"/in/l/")
        with pytest.raises(PermissionDeniedError):
            await client.range(first_created(b"/out/l/"))
        with pytest.raises(PermissionDeniedError):
            async with client.watch(CreateRequest(key=b"/out/l/k")):
                pass
        CALLER.set(AuthInfo("nobody", store.revision))
        with pytest.raises(PermissionDeniedError):
            await client.range(rpc_pb2.RangeRequest(key=b"/in/l/k"))
        CALLER.set(ANONYMOUS)
        with pytest.raises(UserEmptyError):
            await client.range(rpc_pb2.RangeRequest(key=b"/in/l/k"))
        CALLER.set(AuthInfo("root", store.revision))
        await _read_and_watch(client, b"/out/l/")

    asyncio.run(scenario())
    # Only the permitted reads and watches reached the member: two for reader, two for root.
    assert len(member.reads) == 2 and watch.opened == 2


def test_nothing_is_checked_with_auth_off_or_outside_a_call() -> None:
    store = _store()
    client, member, _ = _client(store)

    async def outside_a_call() -> None:
        await _read_and_watch(client, b"/out/l/")  # no CALLER: auth was off when it came

    asyncio.run(outside_a_call())
    store.auth_disable()

    async def auth_off() -> None:
        CALLER.set(AuthInfo("nobody", 1))
        await _read_and_watch(client, b"/out/l/")

    asyncio.run(auth_off())
    assert len(member.reads) == 2
