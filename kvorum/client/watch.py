"""Watches as async iterators that survive reconnects and failover without gaps or repeats.

Invariant: ``next_revision`` is the lowest revision not yet handed to the caller. Events
below it are dropped, events from it on are delivered in order; after a stream breaks it is
opened again (on the next endpoint) with ``start_revision = next_revision``. etcd never splits
the events of one revision over two responses (without ``fragment``), so raising
``next_revision`` per response keeps every revision whole.

A watch created without a start revision learns its starting point from the server's
"created" response (its header revision + 1), so even that case resumes exactly.
"""

from __future__ import annotations

import asyncio
import collections
import logging
from collections.abc import AsyncIterator
from typing import Any

import grpc
import grpc.aio

from kvorum.api.pb.etcdserverpb import rpc_pb2
from kvorum.client.errors import (
    CompactedError,
    EtcdError,
    InvalidAuthTokenError,
    Unavailable,
    error_from_rpc,
)
from kvorum.client.transport import BACKOFF_MAX_S, BACKOFF_MIN_S, Pool
from kvorum.client.types import Event

__all__ = ["RECONNECT_TIMEOUT_S", "Watch"]

log = logging.getLogger("kvorum.client")

# How long a watch keeps trying to reach some endpoint before it gives up with Unavailable.
RECONNECT_TIMEOUT_S = 60.0
_COMPACTED_TEXT = "etcdserver: mvcc: required revision has been compacted"
# Ask the server to end the stream when it loses its leader (etcd's "hasleader" metadata),
# so that a watch on a member cut off from the cluster moves elsewhere instead of going quiet.
_REQUIRE_LEADER = ("hasleader", "true")


class _Reconnect(Exception):
    """The stream broke; open it again (on the next endpoint)."""


class Watch:
    """``async for event in watch`` yields ``Event``s; ``aclose()`` (or leaving the loop) ends it.

    Raises ``CompactedError`` (with ``compact_revision``) when the revision to start or resume
    from was compacted, and ``Unavailable`` when no endpoint could be reached for
    ``reconnect_timeout_s``.
    """

    def __init__(
        self,
        pool: Pool,
        request: rpc_pb2.WatchCreateRequest,
        *,
        reconnect_timeout_s: float = RECONNECT_TIMEOUT_S,
    ) -> None:
        self._pool = pool
        self._request = request
        self.next_revision = request.start_revision
        self._reconnect_timeout_s = reconnect_timeout_s
        self._call: Any = None
        self._buffer: collections.deque[Event] = collections.deque()
        self._closed = False
        self._index = 0  # the endpoint the open stream is on
        self.watch_id: int | None = None

    def __aiter__(self) -> AsyncIterator[Event]:
        return self._events()

    async def __aenter__(self) -> Watch:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    async def _events(self) -> AsyncIterator[Event]:
        # An async generator: when the caller leaves its loop and drops it, asyncio's
        # finaliser runs the ``finally`` and the server-side watch is cancelled.
        try:
            while True:
                event = await self.next()
                if event is None:
                    return
                yield event
        finally:
            await self.aclose()

    async def next(self) -> Event | None:
        """The next event, or None once the watch is closed."""
        while not self._buffer:
            if self._closed:
                return None
            await self._fill()
        return self._buffer.popleft()

    async def aclose(self) -> None:
        self._closed = True
        self._drop()

    def _drop(self) -> None:
        call, self._call = self._call, None
        if call is not None:
            call.cancel()

    async def _fill(self) -> None:
        if self._call is None:
            await self._open()
            return
        try:
            response = await self._call.read()
        except grpc.aio.AioRpcError as exc:
            if self._closed:
                return
            self._retry_or_raise(error_from_rpc(exc))
            return
        except asyncio.CancelledError:
            if self._closed and self._call is None:
                return
            raise
        if response is grpc.aio.EOF:
            self._drop()
            return
        self._accept(response)

    def _retry_or_raise(self, err: EtcdError) -> None:
        # A broken stream (member gone, leader lost) is resumed elsewhere; a refusal is final.
        if not isinstance(err, Unavailable) and err.code not in ("CANCELLED", "UNKNOWN"):
            self._closed = True
            self._drop()
            raise err
        log.info("client: watch stream broke (%s); resuming at %d", err.text, self.next_revision)
        self._drop()
        self._pool.advance(self._index)

    def _accept(self, response: rpc_pb2.WatchResponse) -> None:
        if response.compact_revision:
            self._closed = True
            self._drop()
            raise CompactedError(_COMPACTED_TEXT, "OUT_OF_RANGE", response.compact_revision)
        if response.created and self.next_revision == 0:
            self.next_revision = response.header.revision + 1
        if response.canceled:
            self._closed = True
            self._drop()
            raise EtcdError(response.cancel_reason or "etcdserver: watch canceled", "CANCELLED")
        low = self.next_revision
        for ev in response.events:
            if ev.kv.mod_revision >= low:
                self._buffer.append(Event.from_pb(ev))
                self.next_revision = max(self.next_revision, ev.kv.mod_revision + 1)

    async def _open(self) -> None:
        """Open a stream on the current endpoint (failing over) and read its "created" reply."""
        loop = asyncio.get_running_loop()
        give_up_at = loop.time() + self._reconnect_timeout_s
        backoff_s = BACKOFF_MIN_S
        while not self._closed:
            index = self._pool.current
            self._index = index
            timeout_s = self._pool.config.connect_timeout_s
            try:
                if not await self._pool.ready(index, timeout_s):
                    raise _Reconnect(f"cannot connect to {self._pool.endpoints[index].url}")
                md = list(await self._pool.metadata(index, self._pool.config.timeout_s) or ())
                call = self._pool.stub(index, "Watch").Watch(metadata=[*md, _REQUIRE_LEADER])
                self._call = call
                request = rpc_pb2.WatchCreateRequest()
                request.CopyFrom(self._request)
                request.start_revision = self.next_revision
                await call.write(rpc_pb2.WatchRequest(create_request=request))
                created = await asyncio.wait_for(call.read(), self._pool.config.timeout_s)
                if created is grpc.aio.EOF:
                    raise _Reconnect("stream ended before the watch was created")
                self.watch_id = created.watch_id
                self._accept(created)
                if self._closed:  # aclose() ran while the stream was being opened
                    self._drop()
                return
            except (grpc.aio.AioRpcError, _Reconnect, TimeoutError, Unavailable) as exc:
                if isinstance(exc, grpc.aio.AioRpcError):
                    err = error_from_rpc(exc)
                    if isinstance(err, InvalidAuthTokenError):
                        self._pool.forget_token(index)  # expired token: log in again, retry
                    elif not isinstance(err, Unavailable) and err.code != "CANCELLED":
                        self._closed = True
                        self._drop()
                        raise err from None
                log.info("client: watch could not start on endpoint %d: %s", index, exc)
                self._drop()
                self._pool.advance(index)
                if loop.time() > give_up_at:
                    self._closed = True
                    raise Unavailable(
                        f"watch: no endpoint reachable for {self._reconnect_timeout_s:g}s",
                        "UNAVAILABLE",
                    ) from None
                await asyncio.sleep(backoff_s)
                backoff_s = min(backoff_s * 2, BACKOFF_MAX_S)
