"""Keeping a lease alive in the background, across failures and endpoints.

``KeepAlive`` owns one ``LeaseKeepAlive`` stream and one asyncio task. It refreshes the lease
every ``ttl / 3`` seconds (the TTL the server last reported), so two refreshes may fail in a row
before the lease is at risk. A stream that breaks or answers too slowly is dropped and a new one
is opened on the next endpoint straight away. Refreshing is idempotent, so repeating it on
another member is always safe. A reply with TTL <= 0 means the lease is gone (expired or
revoked): the task stops and ``error`` holds a ``LeaseNotFoundError``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

import grpc
import grpc.aio

from kvorum.api.pb.etcdserverpb import rpc_pb2
from kvorum.client.errors import (
    DeadlineExceededError,
    EtcdError,
    InvalidAuthTokenError,
    LeaseNotFoundError,
    Unavailable,
    error_from_rpc,
)
from kvorum.client.transport import BACKOFF_MAX_S, BACKOFF_MIN_S, Pool

__all__ = ["MIN_REFRESH_INTERVAL_S", "KeepAlive"]

log = logging.getLogger("kvorum.client")

MIN_REFRESH_INTERVAL_S = 0.2
_LEASE_GONE = "etcdserver: requested lease not found"


class KeepAlive:
    """Keeps lease ``lease_id`` alive until ``stop()`` (or the end of ``async with``).

    ``ttl_s`` is the TTL the server last granted (0 before the first refresh); ``refreshes``
    counts successful refreshes; ``error`` is set when the task ended because of a failure.
    """

    def __init__(self, pool: Pool, lease_id: int) -> None:
        self._pool = pool
        self.lease_id = lease_id
        self.ttl_s = 0
        self.refreshes = 0
        self.error: EtcdError | None = None
        self._call: Any = None
        self._index = 0
        self._task: asyncio.Task[None] | None = None
        self._first = asyncio.Event()

    async def __aenter__(self) -> KeepAlive:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.stop()

    async def start(self) -> None:
        """Start refreshing; returns after the first refresh (raises if the lease is gone)."""
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name=f"keepalive-{self.lease_id:x}")
        try:
            await asyncio.wait_for(self._first.wait(), self._pool.config.timeout_s)
        except TimeoutError:
            await self.stop()
            raise DeadlineExceededError(
                f"keep-alive of lease {self.lease_id:x}: no refresh within the deadline",
                "DEADLINE_EXCEEDED",
            ) from None
        if self.error is not None:
            raise self.error

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._drop()

    @property
    def running(self) -> bool:
        return self._task is not None and not self._task.done()

    def _drop(self) -> None:
        call, self._call = self._call, None
        if call is not None:
            call.cancel()

    async def _refresh(self) -> int:
        """One refresh round trip on the current stream (opened if needed); the new TTL."""
        if self._call is None:
            self._index = index = self._pool.current
            if not await self._pool.ready(index, self._pool.config.connect_timeout_s):
                raise Unavailable(
                    f"cannot connect to {self._pool.endpoints[index].url}", "UNAVAILABLE"
                )
            md = await self._pool.metadata(index, self._pool.config.timeout_s)
            self._call = self._pool.stub(index, "Lease").LeaseKeepAlive(metadata=md)
        if self._call.done():
            # The stream ended (its member went away) between two refreshes.
            raise Unavailable("keep-alive stream ended", "UNAVAILABLE")
        await self._call.write(rpc_pb2.LeaseKeepAliveRequest(ID=self.lease_id))
        response = await asyncio.wait_for(self._call.read(), self._pool.config.timeout_s)
        if response is grpc.aio.EOF:
            raise Unavailable("keep-alive stream ended", "UNAVAILABLE")
        return int(response.TTL)

    async def _run(self) -> None:
        backoff_s = BACKOFF_MIN_S
        try:
            while True:
                try:
                    ttl_s = await self._refresh()
                except (
                    grpc.aio.AioRpcError,
                    Unavailable,
                    TimeoutError,
                    asyncio.InvalidStateError,
                ) as exc:
                    # A finished stream raises InvalidStateError on write: same as broken.
                    err = error_from_rpc(exc) if isinstance(exc, grpc.aio.AioRpcError) else exc
                    if isinstance(err, InvalidAuthTokenError):
                        self._pool.forget_token(self._index)  # expired token: log in again
                    elif isinstance(err, EtcdError) and not isinstance(err, Unavailable):
                        self.error = err
                        return
                    log.info(
                        "client: keep-alive of lease %x failed (%s); failing over",
                        self.lease_id,
                        exc,
                    )
                    self._drop()
                    self._pool.advance(self._index)
                    await asyncio.sleep(backoff_s)
                    backoff_s = min(backoff_s * 2, BACKOFF_MAX_S)
                    continue
                backoff_s = BACKOFF_MIN_S
                if ttl_s <= 0:
                    self.error = LeaseNotFoundError(_LEASE_GONE, "NOT_FOUND")
                    return
                self.ttl_s = ttl_s
                self.refreshes += 1
                self._first.set()
                await asyncio.sleep(max(ttl_s / 3, MIN_REFRESH_INTERVAL_S))
        finally:
            self._first.set()
            self._drop()
