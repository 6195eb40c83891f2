"""Distributed lock and leader election over etcd's ``v3lockpb.Lock`` and
``v3electionpb.Election`` services.

Both hold their claim through a lease: the lease is granted here and kept alive by a
``KeepAlive`` while the lock is held or the campaign stands, so a process that dies loses its
lock or leadership once the lease expires (``ttl_s``), and never holds it forever.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncGenerator
from typing import TYPE_CHECKING

import grpc.aio

from kvorum.api.pb.v3electionpb import v3election_pb2
from kvorum.client.errors import EtcdError, error_from_rpc
from kvorum.client.lease import KeepAlive
from kvorum.client.types import KeyValue

if TYPE_CHECKING:
    from kvorum.client.aio import AsyncClient

__all__ = ["Election", "Lock"]

DEFAULT_TTL_S = 60


class _Session:
    """A lease with its keep-alive: what a lock or a campaign stands on."""

    def __init__(self, client: AsyncClient, ttl_s: int) -> None:
        self._client = client
        self._ttl_s = ttl_s
        self.lease_id = 0
        self._keep_alive: KeepAlive | None = None

    async def open(self) -> int:
        grant = await self._client.grant(self._ttl_s)
        self.lease_id = grant.id
        self._keep_alive = self._client.keep_alive(grant.id)
        try:
            await self._keep_alive.start()
        except BaseException:
            await self.close()
            raise
        return grant.id

    async def close(self) -> None:
        keep_alive, self._keep_alive = self._keep_alive, None
        if keep_alive is not None:
            await keep_alive.stop()
        if self.lease_id:
            lease_id, self.lease_id = self.lease_id, 0
            # Revoking releases whatever the lease holds at once; if it fails the lease still
            # expires on its own after ttl_s.
            with contextlib.suppress(EtcdError):
                await self._client.revoke(lease_id)


class Lock:
    """``async with c.lock("name", ttl_s=10):`` -- or ``acquire()`` / ``release()``.

    ``key`` is the lock's key in etcd while held (None otherwise).
    """

    def __init__(self, client: AsyncClient, name: bytes, *, ttl_s: int, timeout_s: float) -> None:
        self._client = client
        self.name = name
        self._session = _Session(client, ttl_s)
        self._timeout_s = timeout_s
        self.key: bytes | None = None

    async def acquire(self) -> bytes:
        lease_id = await self._session.open()
        try:
            self.key = await self._client._lock(self.name, lease_id, self._timeout_s)
        except BaseException:
            # The server may have granted the lock before the failure: revoking the lease
            # releases it in every case.
            await self._session.close()
            raise
        return self.key

    async def release(self) -> None:
        key, self.key = self.key, None
        try:
            if key is not None:
                await self._client._unlock(key)
        finally:
            await self._session.close()

    async def __aenter__(self) -> Lock:
        await self.acquire()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.release()


class Election:
    """Leader election ``name``: ``campaign`` (blocks until elected), ``proclaim``,
    ``leader``, ``observe`` and ``resign``."""

    def __init__(self, client: AsyncClient, name: bytes) -> None:
        self._client = client
        self.name = name
        self._session: _Session | None = None
        self._leader: v3election_pb2.LeaderKey | None = None

    @property
    def is_leader(self) -> bool:
        return self._leader is not None

    async def campaign(
        self, value: str | bytes, *, ttl_s: int = DEFAULT_TTL_S, timeout_s: float = float("inf")
    ) -> None:
        if self._leader is not None:
            raise RuntimeError("already leader of this election")
        session = _Session(self._client, ttl_s)
        lease_id = await session.open()
        data = value.encode() if isinstance(value, str) else value
        try:
            self._leader = await self._client._campaign(self.name, lease_id, data, timeout_s)
        except BaseException:
            await session.close()
            raise
        self._session = session

    async def proclaim(self, value: str | bytes) -> None:
        if self._leader is None:
            raise RuntimeError("proclaim needs a won campaign")
        data = value.encode() if isinstance(value, str) else value
        await self._client._proclaim(self._leader, data)

    async def leader(self) -> KeyValue:
        """The current leader's key and value (raises if nobody leads)."""
        return await self._client._leader(self.name)

    async def resign(self) -> None:
        leader, self._leader = self._leader, None
        session, self._session = self._session, None
        try:
            if leader is not None:
                await self._client._resign(leader)
        finally:
            if session is not None:
                await session.close()

    async def observe(self) -> AsyncGenerator[KeyValue, None]:
        """Each leader value as it changes, starting with the current one."""
        pool = self._client.pool
        index = pool.current
        md = await pool.metadata(index, pool.config.timeout_s)
        stream = pool.stub(index, "Election").Observe(
            v3election_pb2.LeaderRequest(name=self.name), metadata=md
        )
        try:
            async for response in stream:
                yield KeyValue.from_pb(response.kv)
        except grpc.aio.AioRpcError as exc:
            raise error_from_rpc(exc) from None
        finally:
            stream.cancel()
