"""etcdserverpb.Watch: the asyncio shell around the pure `WatchHub`.

`WatchService` owns the member's hub. The apply layer hands it each applied batch's events
(`publish_events`, called once the batch is visible to readers, so a watcher is never told
about a revision history cannot give it yet); one background task (`run`) catches unsynced
watchers up from history while any exist and sends progress notifications every second tick.

`WatchServicer.Watch` serves one bidirectional stream: a reader task turns WatchRequests
into hub calls, and the handler itself sends what the hub queued for the stream, awaiting
each `context.write` -- so a stalled client holds up only its own stream, whose bounded hub
buffer then turns its watchers unsynced instead of growing. The hub stream is closed when
the RPC ends, however it ends.

As etcd 3.4 (`etcdserver/api/v3rpc/watch.go`): a request with no known union member is
ignored; a client that half-closes keeps receiving until it cancels the RPC; the created,
cancel and compaction answers are the hub's (see its docstring for where kvorum departs).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
from collections.abc import AsyncIterator, Sequence
from typing import Protocol

import grpc

from kvorum.api import convert
from kvorum.api.member import Header
from kvorum.api.pb.etcdserverpb import rpc_pb2, rpc_pb2_grpc
from kvorum.api.pb.mvccpb import kv_pb2
from kvorum.mvcc import Event, EventType
from kvorum.watch import (
    DEFAULT_DRAIN_RESPONSES,
    CreateRequest,
    History,
    WatchHub,
    WatchResponse,
)

__all__ = ["PROGRESS_TICK_S", "SYNC_RETRY_S", "HeaderSource", "WatchService", "WatchServicer"]

log = logging.getLogger("kvorum.api.watch")

#: one hub progress tick (the hub counts etcd's 10-minute progress interval in these).
PROGRESS_TICK_S = 1.0
#: pause before the next catch-up step when the last one could not advance anyone (all
#: buffers full, waiting on slow clients); etcd's syncWatchersLoop waits 100 ms too.
SYNC_RETRY_S = 0.1
#: etcd's WatchCreateRequest.FilterType values.
_FILTER_NOPUT = 0
_FILTER_NODELETE = 1


class HeaderSource(Protocol):
    """Who answers: cluster id, member id and raft term for response headers."""

    def header(self) -> Header: ...


class WatchService:
    """The member's watch hub with its clock, catch-up task and per-stream wake-ups.

    Everything runs on the event loop thread (the hub is not thread-safe), which is also the
    apply thread, so `publish_events` and every hub call are serialized without locks.
    """

    def __init__(self, hub: WatchHub, history: History) -> None:
        self._hub = hub
        self._history = history
        self._stream_ids = itertools.count(1)
        self._stream_wakes: dict[int, asyncio.Event] = {}
        self._sync_wake = asyncio.Event()

    @property
    def hub(self) -> WatchHub:
        return self._hub

    # --- the write path -------------------------------------------------------------------

    def publish_events(self, events: Sequence[Event]) -> None:
        """One applied batch's events (revision order): publish them revision by revision."""
        start = 0
        for i in range(1, len(events) + 1):
            if i < len(events) and events[i].kv.mod_revision == events[start].kv.mod_revision:
                continue
            revision = events[start].kv.mod_revision
            if revision > self._hub.revision:
                self._hub.publish(revision, events[start:i])
            else:
                # Cannot happen while revisions only grow; never worth failing an apply for.
                log.error(
                    "watch: revision %d published twice (hub at %d)", revision, self._hub.revision
                )
            start = i
        self._notify()

    def skip_to(self, revision: int) -> None:
        """The store jumped to ``revision`` (a snapshot was installed): catch up from history."""
        self._hub.skip_to(revision)
        self._notify()

    # --- streams --------------------------------------------------------------------------

    def open_stream(self) -> int:
        stream_id = next(self._stream_ids)
        self._hub.open_stream(stream_id)
        self._stream_wakes[stream_id] = asyncio.Event()
        return stream_id

    def close_stream(self, stream_id: int) -> None:
        self._hub.close_stream(stream_id)
        self._stream_wakes.pop(stream_id, None)

    def create(self, stream_id: int, request: CreateRequest) -> None:
        self._hub.create(stream_id, request)
        self._notify()

    def cancel(self, stream_id: int, watch_id: int) -> None:
        self._hub.cancel(stream_id, watch_id)
        self._notify()

    def request_progress(self, stream_id: int) -> None:
        self._hub.request_progress(stream_id)
        self._notify()

    def take(self, stream_id: int) -> list[WatchResponse]:
        """Up to `DEFAULT_DRAIN_RESPONSES` queued responses of the stream, oldest first."""
        out = self._hub.drain(stream_id, DEFAULT_DRAIN_RESPONSES)
        if out:
            # More may be queued than one take returns (the hub then marks the stream ready
            # again): wake its sender now, not at the next write or progress tick. Room was
            # made too, so unsynced watchers may catch up.
            self._notify()
        return out

    async def wait(self, stream_id: int) -> None:
        """Until the stream may have responses queued (returns at once if it was woken)."""
        wake = self._stream_wakes.get(stream_id)
        if wake is None:
            return
        await wake.wait()
        wake.clear()

    def wake(self, stream_id: int) -> None:
        """Make the stream's sender look again (its reader ended)."""
        wake = self._stream_wakes.get(stream_id)
        if wake is not None:
            wake.set()

    def _notify(self) -> None:
        for stream_id in self._hub.pop_ready_streams():
            wake = self._stream_wakes.get(stream_id)
            if wake is not None:
                wake.set()
        if self._hub.has_unsynced:
            self._sync_wake.set()

    # --- background -----------------------------------------------------------------------

    async def run(self) -> None:
        """Catch unsynced watchers up and tick progress, until cancelled."""
        loop = asyncio.get_running_loop()
        ticks = 0
        next_tick_at = loop.time()
        while True:
            try:
                now = loop.time()
                if now >= next_tick_at:
                    self._hub.progress(ticks)
                    ticks += 1
                    next_tick_at = now + PROGRESS_TICK_S
                    self._notify()
                timeout_s = next_tick_at - now
                if self._hub.has_unsynced:
                    report = self._hub.sync_step(self._history)
                    self._notify()
                    progressed = report.watchers_advanced or report.watchers_compacted
                    if report.more and progressed:
                        await asyncio.sleep(0)  # let writers and streams run between steps
                        continue
                    timeout_s = min(timeout_s, SYNC_RETRY_S)
            except Exception:
                # A bug here must not stop every watcher's catch-up for good: said, retried.
                log.exception("watch: catch-up step failed; retrying")
                timeout_s = SYNC_RETRY_S
            self._sync_wake.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._sync_wake.wait(), max(timeout_s, 0.0))


class WatchServicer(rpc_pb2_grpc.WatchServicer):
    """One Watch RPC = one hub stream."""

    def __init__(self, member: HeaderSource, service: WatchService) -> None:
        self._member = member
        self._service = service

    async def Watch(
        self,
        request_iterator: AsyncIterator[rpc_pb2.WatchRequest],
        context: grpc.aio.ServicerContext[rpc_pb2.WatchRequest, rpc_pb2.WatchResponse],
    ) -> None:
        service = self._service
        stream_id = service.open_stream()
        reader = asyncio.create_task(self._read(stream_id, request_iterator))
        try:
            while True:
                for response in service.take(stream_id):
                    await context.write(self._to_pb(response))
                if reader.done() and reader.exception() is not None:
                    return  # the stream broke; the RPC is over
                await service.wait(stream_id)
        finally:
            reader.cancel()
            with contextlib.suppress(BaseException):
                await reader
            service.close_stream(stream_id)

    async def _read(self, stream_id: int, requests: AsyncIterator[rpc_pb2.WatchRequest]) -> None:
        service = self._service
        try:
            async for request in requests:
                kind = request.WhichOneof("request_union")
                if kind == "create_request":
                    service.create(stream_id, _create_request(request.create_request))
                elif kind == "cancel_request":
                    service.cancel(stream_id, request.cancel_request.watch_id)
                elif kind == "progress_request":
                    service.request_progress(stream_id)
                # else: etcd ignores what it does not know rather than end the stream.
        finally:
            # Wake the sender so it notices a broken stream; after a clean half-close it
            # keeps serving, as etcd does.
            service.wake(stream_id)

    def _to_pb(self, r: WatchResponse) -> rpc_pb2.WatchResponse:
        member = self._member.header()
        header = (
            convert.header(member, r.revision) if r.revision else convert.cluster_header(member)
        )
        return rpc_pb2.WatchResponse(
            header=header,
            watch_id=r.watch_id,
            created=r.created,
            canceled=r.canceled,
            compact_revision=r.compact_revision,
            cancel_reason=r.cancel_reason,
            fragment=r.fragment,
            events=[_event(e) for e in r.events],
        )


def _create_request(r: rpc_pb2.WatchCreateRequest) -> CreateRequest:
    filters = set(r.filters)
    return CreateRequest(
        key=r.key,
        range_end=r.range_end,
        start_revision=r.start_revision,
        watch_id=r.watch_id,
        no_put=_FILTER_NOPUT in filters,
        no_delete=_FILTER_NODELETE in filters,
        prev_kv=r.prev_kv,
        progress_notify=r.progress_notify,
        fragment=r.fragment,
    )


def _event(e: Event) -> kv_pb2.Event:
    kind = kv_pb2.Event.PUT if e.type == EventType.PUT else kv_pb2.Event.DELETE
    if e.prev_kv is None:
        return kv_pb2.Event(type=kind, kv=convert.kv(e.kv))
    return kv_pb2.Event(type=kind, kv=convert.kv(e.kv), prev_kv=convert.kv(e.prev_kv))
