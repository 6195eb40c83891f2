"""Sending to one peer: two persistent connections, each with a bounded queue.

``Peer.send`` never waits: it encodes the message, picks the connection (small or bulk,
see ``limits.BULK_MESSAGE_TYPES``) and appends to that connection's queue. Each
connection is served by one task that dials lazily (on the first message), performs the
handshake, and then writes whatever has queued up since its last write as one
``write`` of consecutive frames, so the number of writes follows the event loop's
iterations, not the number of messages.

When a connection cannot be made or breaks, its queue is dropped and raft is told the
peer is unreachable (raft retries; nothing here does). While the connection waits to
redial (exponential back-off) new messages for it are dropped the same way, so raft
always learns promptly that its messages are not getting through.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import random
import socket
import ssl
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from enum import Enum

from kvorum.raft.types import Logger, Message, MessageType
from kvorum.transport.backoff import Backoff, RateLimiter
from kvorum.transport.codec import Buffer, CodecError, encode_message, encode_message_parts
from kvorum.transport.limits import BULK_MESSAGE_TYPES, TransportLimits
from kvorum.transport.urls import PeerAddress, parse_peer_url
from kvorum.transport.wire import (
    FRAME_HEADER,
    SNAP_ACK,
    SNAP_BEGIN,
    SNAP_CHUNK,
    FrameKind,
    FrameReader,
    Hello,
    HelloReply,
    HelloStatus,
    StreamKind,
    frame_header,
)

__all__ = ["OutboundContext", "Peer", "PeerStats"]

# Replies on a dialed connection are only snapshot acks: a small frame limit suffices.
_REPLY_MAX_FRAME_BYTES = 1024


@dataclass(frozen=True, slots=True)
class OutboundContext:
    """What every outbound connection of one transport shares."""

    member_id: int
    cluster_id: int
    limits: TransportLimits
    client_ssl: ssl.SSLContext | None
    logger: Logger
    rng: random.Random
    log_limiter: RateLimiter
    on_unreachable: Callable[[int], None]
    on_snapshot_status: Callable[[int, bool], None]


@dataclass(frozen=True, slots=True)
class PeerStats:
    active: bool | None  # None until a connection to the peer was first tried
    messages_sent: int
    bytes_sent: int
    messages_dropped: int
    queued_messages: int
    writes: int  # socket writes issued: with batching, far fewer than messages_sent


@dataclass(slots=True)
class _Outgoing:
    parts: list[Buffer]  # frame header and encoded message; empty for a snapshot
    size_bytes: int  # what the message weighs against the queue's byte bound
    snapshot: Message | None = None  # a SNAP message, streamed in chunks when its turn comes


class _State(Enum):
    IDLE = "idle"  # never needed yet: connections open lazily
    CONNECTING = "connecting"
    CONNECTED = "connected"
    BACKOFF = "backoff"  # waiting to redial; messages are refused meanwhile
    CLOSED = "closed"


class _DialError(Exception):
    """Why a connection could not be established (the text is for the operator)."""


@dataclass(slots=True)
class _Connection:
    reader: asyncio.StreamReader
    writer: asyncio.StreamWriter
    url: str


# Why enqueue refused a message (None means accepted).
DROP_INACTIVE = "peer inactive"
DROP_OVERFLOW = "send queue full"
DROP_CLOSED = "peer removed"


class _Stream:
    """One connection to the peer and the queue in front of it."""

    def __init__(self, peer: Peer, kind: StreamKind, max_messages: int, max_bytes: int) -> None:
        self._peer = peer
        self.kind = kind
        self._max_messages = max_messages
        self._max_bytes = max_bytes
        # Invariant: _queued_bytes == sum(item.size_bytes for item in _queue).
        self._queue: deque[_Outgoing] = deque()
        self._queued_bytes = 0
        self._wakeup = asyncio.Event()
        self._state = _State.IDLE
        self._task: asyncio.Task[None] | None = None
        self._conn: _Connection | None = None
        # Set (once per connection) by whoever first notices the connection is gone.
        self._lost_reason: str | None = None
        self._url_index = 0
        self._redial_now = False
        self._snapshot_seq = 0
        # Snapshots fully written on the current connection and not yet acknowledged;
        # the timer (None while the data is still being written) fails them if no ack comes.
        self._snapshots_pending: dict[int, asyncio.TimerHandle | None] = {}

    @property
    def queued_messages(self) -> int:
        return len(self._queue)

    def enqueue(self, item: _Outgoing) -> str | None:
        """Queue ``item`` for sending; return why it was refused, or None."""
        state = self._state
        if state is _State.BACKOFF:
            return DROP_INACTIVE
        if state is _State.CLOSED:
            return DROP_CLOSED
        queue = self._queue
        if queue and (
            len(queue) >= self._max_messages
            or self._queued_bytes + item.size_bytes > self._max_bytes
        ):
            return DROP_OVERFLOW
        queue.append(item)
        self._queued_bytes += item.size_bytes
        if state is _State.IDLE:
            self.open()
        self._wakeup.set()
        return None

    def open(self) -> None:
        """Dial now, with nothing to send yet (no-op unless idle)."""
        if self._state is _State.IDLE:
            self._state = _State.CONNECTING
            self._task = asyncio.get_running_loop().create_task(
                self._run(), name=f"kvorum-transport-{self._peer.id_hex}-{self.kind.name.lower()}"
            )

    def connected_url(self) -> str | None:
        return self._conn.url if self._conn is not None else None

    def redial(self, reason: str) -> None:
        """Drop the current connection (if any) and dial the peer's URLs again at once."""
        if self._conn is not None:
            self._redial_now = True
            self._lose(reason)
            self._conn.writer.close()

    def close(self) -> asyncio.Task[None] | None:
        """Stop for good without reporting anything; return the task still winding down."""
        self._state = _State.CLOSED
        self._queue.clear()
        self._queued_bytes = 0
        self._cancel_snapshot_timers()
        task, self._task = self._task, None
        if task is not None and not task.done():
            task.cancel()
            return task
        return None

    # --- the connection task ------------------------------------------------------

    async def _run(self) -> None:
        limits = self._peer.ctx.limits
        backoff = Backoff(limits.backoff_min_s, limits.backoff_max_s, self._peer.ctx.rng)
        while True:
            self._state = _State.CONNECTING
            try:
                conn = await self._dial()
            except _DialError as exc:
                self._url_index += 1
                self._failed(str(exc), was_connected=False)
                await asyncio.sleep(backoff.next_delay_s())
                continue
            backoff.reset()
            self._conn = conn
            self._lost_reason = None
            self._state = _State.CONNECTED
            self._peer.stream_up(self.kind, conn.url)
            try:
                reason = await self._pump(conn)
            finally:
                self._conn = None
                conn.writer.close()
            if self._redial_now:
                # The peer moved (update_peer): go to its new URL at once, keeping the queue.
                self._redial_now = False
                self._peer.stream_moved(self.kind)
                continue
            self._failed(reason, was_connected=True)
            await asyncio.sleep(backoff.next_delay_s())

    async def _dial(self) -> _Connection:
        ctx = self._peer.ctx
        addresses = self._peer.addresses
        if not addresses:
            raise _DialError("no peer URL is known")
        url, address = addresses[self._url_index % len(addresses)]
        if address.tls and ctx.client_ssl is None:
            raise _DialError(f"{url} needs TLS but no client TLS context is configured")
        timeout_s = ctx.limits.handshake_timeout_s
        hello = Hello(self.kind, ctx.cluster_id, ctx.member_id, self._peer.id)
        try:
            async with asyncio.timeout(timeout_s):
                reader, writer = await asyncio.open_connection(
                    address.host, address.port, ssl=ctx.client_ssl if address.tls else None
                )
                try:
                    writer.write(hello.encode())
                    reply = HelloReply.decode(await reader.readexactly(HelloReply.SIZE))
                except BaseException:
                    writer.close()
                    raise
        except TimeoutError:
            raise _DialError(f"no handshake from {url} within {timeout_s}s") from None
        except asyncio.IncompleteReadError:
            raise _DialError(f"{url} closed the connection during the handshake") from None
        except (OSError, CodecError) as exc:
            raise _DialError(f"cannot connect to {url}: {exc}") from None
        if reply.status is not HelloStatus.OK:
            writer.close()
            self._peer.log_refusal(url, reply)
            raise _DialError(f"{url} refused the connection ({reply.status.name})")
        _set_nodelay(writer)
        return _Connection(reader, writer, url)

    async def _pump(self, conn: _Connection) -> str:
        """Write queued frames until the connection is lost; return why it was."""
        replies = asyncio.get_running_loop().create_task(self._read_replies(conn))
        writer = conn.writer
        limits = self._peer.ctx.limits
        flush_max_bytes = limits.flush_max_bytes
        queue = self._queue
        try:
            while True:
                if self._lost_reason is not None:
                    return self._lost_reason
                if writer.is_closing():
                    # uvloop closes a transport on a send error at once, before our reply
                    # reader hears of it, and then raises RuntimeError (not OSError) on
                    # write: that would end this task for good and cut the peer off.
                    return f"connection to {conn.url} was closed"
                if not queue:
                    self._wakeup.clear()
                    await self._wakeup.wait()
                    continue
                if queue[0].snapshot is not None:
                    item = queue.popleft()
                    self._queued_bytes -= item.size_bytes
                    await self._send_snapshot(conn, item)
                    continue
                # Everything queued since the last flush goes out in one write (bounded).
                parts: list[Buffer] = []
                size = 0
                count = 0
                while queue and queue[0].snapshot is None:
                    item = queue[0]
                    if size and size + item.size_bytes > flush_max_bytes:
                        break
                    queue.popleft()
                    parts += item.parts
                    size += item.size_bytes
                    count += 1
                self._queued_bytes -= size
                writer.write(b"".join(parts))
                self._peer.count_sent(count, size)
                if writer.transport.get_write_buffer_size():
                    async with asyncio.timeout(limits.write_timeout_s):
                        await writer.drain()
        except TimeoutError:
            return f"writes to {conn.url} did not drain within {limits.write_timeout_s}s"
        except OSError as exc:
            return f"write to {conn.url} failed: {exc}"
        finally:
            replies.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await replies
            self._fail_pending_snapshots()

    async def _read_replies(self, conn: _Connection) -> None:
        """Read snapshot acks; notice at once when the peer closes the connection."""
        frames = FrameReader(_REPLY_MAX_FRAME_BYTES)
        try:
            while True:
                data = await conn.reader.read(65536)
                if not data:
                    self._lose(f"{conn.url} closed the connection")
                    return
                for kind, payload in frames.feed(data):
                    if kind != FrameKind.SNAP_ACK or len(payload) != SNAP_ACK.size:
                        raise CodecError(f"unexpected reply frame of kind {kind}")
                    seq, ok = SNAP_ACK.unpack(payload)
                    self._snapshot_acked(seq, bool(ok))
        except (OSError, CodecError) as exc:
            self._lose(f"reading from {conn.url} failed: {exc}")

    def _lose(self, reason: str) -> None:
        if self._lost_reason is None:
            self._lost_reason = reason
        self._wakeup.set()

    def _failed(self, reason: str, was_connected: bool) -> None:
        """Drop the queue, tell raft, and start waiting to redial."""
        self._state = _State.BACKOFF
        dropped = len(self._queue)
        snapshots = sum(1 for item in self._queue if item.snapshot is not None)
        self._queue.clear()
        self._queued_bytes = 0
        peer = self._peer
        peer.count_dropped(dropped)
        for _ in range(snapshots):
            peer.ctx.on_snapshot_status(peer.id, False)
        if dropped or was_connected:
            # Messages written just before a break may be lost too: raft must probe again.
            peer.ctx.on_unreachable(peer.id)
        peer.stream_down(self.kind, reason)

    # --- snapshots ----------------------------------------------------------------

    async def _send_snapshot(self, conn: _Connection, item: _Outgoing) -> None:
        msg = item.snapshot
        assert msg is not None and msg.snapshot is not None
        data = msg.snapshot.data
        limits = self._peer.ctx.limits
        self._snapshot_seq += 1
        seq = self._snapshot_seq
        # Registered before the first byte: a connection lost mid-transfer fails it.
        self._snapshots_pending[seq] = None
        meta = encode_message(
            dataclasses.replace(msg, snapshot=dataclasses.replace(msg.snapshot, data=b""))
        )
        writer = conn.writer
        writer.write(
            frame_header(FrameKind.SNAP_BEGIN, SNAP_BEGIN.size + len(meta))
            + SNAP_BEGIN.pack(seq, len(data))
            + meta
        )
        view = memoryview(data)
        chunk_bytes = limits.snapshot_chunk_bytes
        for off in range(0, len(data), chunk_bytes):
            if self._lost_reason is not None or writer.is_closing():
                return  # the pump sees why and fails the pending snapshot
            piece = view[off : off + chunk_bytes]
            writer.write(
                frame_header(FrameKind.SNAP_CHUNK, SNAP_CHUNK.size + len(piece))
                + SNAP_CHUNK.pack(seq)
            )
            writer.write(piece)
            # One chunk per loop iteration at most: the rest of the loop keeps running.
            async with asyncio.timeout(limits.write_timeout_s):
                await writer.drain()
        self._peer.count_sent(1, len(data) + len(meta))
        if seq in self._snapshots_pending:  # the ack may already have come back
            self._snapshots_pending[seq] = asyncio.get_running_loop().call_later(
                limits.snapshot_ack_timeout_s, self._snapshot_timed_out, seq
            )

    def _snapshot_acked(self, seq: int, ok: bool) -> None:
        if seq not in self._snapshots_pending:
            return  # already timed out and reported
        timer = self._snapshots_pending.pop(seq)
        if timer is not None:
            timer.cancel()
        self._peer.ctx.on_snapshot_status(self._peer.id, ok)
        if not ok:
            self._peer.ctx.logger.warning("peer %s refused snapshot %d", self._peer.id_hex, seq)

    def _snapshot_timed_out(self, seq: int) -> None:
        if self._snapshots_pending.pop(seq, None) is None:
            return
        self._peer.ctx.logger.warning(
            "peer %s did not confirm snapshot %d within %ss",
            self._peer.id_hex,
            seq,
            self._peer.ctx.limits.snapshot_ack_timeout_s,
        )
        self._peer.ctx.on_snapshot_status(self._peer.id, False)

    def _fail_pending_snapshots(self) -> None:
        pending = list(self._snapshots_pending)
        self._cancel_snapshot_timers()
        for _ in pending:
            self._peer.ctx.on_snapshot_status(self._peer.id, False)

    def _cancel_snapshot_timers(self) -> None:
        for timer in self._snapshots_pending.values():
            if timer is not None:
                timer.cancel()
        self._snapshots_pending.clear()


class Peer:
    """Everything this member sends to one peer."""

    def __init__(self, peer_id: int, urls: Sequence[str], ctx: OutboundContext) -> None:
        self.id = peer_id
        self.id_hex = f"{peer_id:x}"
        self.ctx = ctx
        self.addresses: tuple[tuple[str, PeerAddress], ...] = _parse_urls(urls)
        limits = ctx.limits
        self._small = _Stream(
            self, StreamKind.SMALL, limits.small_queue_max_messages, limits.small_queue_max_bytes
        )
        self._bulk = _Stream(
            self, StreamKind.BULK, limits.bulk_queue_max_messages, limits.bulk_queue_max_bytes
        )
        self._up: set[StreamKind] = set()
        self._active: bool | None = None
        self._messages_sent = 0
        self._bytes_sent = 0
        self._messages_dropped = 0
        self._writes = 0

    def send(self, msg: Message) -> bool:
        """Queue ``msg``; return False when it was dropped (the caller reports unreachable)."""
        ctx = self.ctx
        limits = ctx.limits
        if msg.type == MessageType.SNAP and msg.snapshot is not None:
            # Only the metadata is counted: the data is the caller's, streamed from there.
            item = _Outgoing([], 256 + 8 * len(msg.snapshot.metadata.conf_state.voters), msg)
            stream = self._bulk
        else:
            parts: list[Buffer] = [b""]
            try:
                size = encode_message_parts(msg, parts)
            except CodecError as exc:
                ctx.logger.error("dropping a message to peer %s: %s", self.id_hex, exc)
                self._messages_dropped += 1
                return False
            if size + FRAME_HEADER.size > limits.max_frame_bytes:
                self._log_limited(
                    "too-large",
                    "dropping a %s message of %d bytes to peer %s: over the %d-byte frame limit",
                    msg.type.name,
                    size,
                    self.id_hex,
                    limits.max_frame_bytes,
                )
                self._messages_dropped += 1
                return False
            parts[0] = frame_header(FrameKind.MESSAGE, size)
            item = _Outgoing(parts, size + FRAME_HEADER.size)
            stream = (
                self._bulk
                if msg.type in BULK_MESSAGE_TYPES and size >= limits.bulk_min_message_bytes
                else self._small
            )
        refused = stream.enqueue(item)
        if refused is None:
            return True
        self._messages_dropped += 1
        if refused == DROP_OVERFLOW:
            self._log_limited(
                "overflow",
                "send queue to peer %s is full (%s connection): dropping messages",
                self.id_hex,
                stream.kind.name.lower(),
            )
        if item.snapshot is not None:
            asyncio.get_running_loop().call_soon(ctx.on_snapshot_status, self.id, False)
        return False

    def update_urls(self, urls: Sequence[str]) -> None:
        self.addresses = _parse_urls(urls)
        known = {url for url, _ in self.addresses}
        for stream in (self._small, self._bulk):
            url = stream.connected_url()
            if url is not None and url not in known:
                stream.redial(f"peer URLs changed; {url} is no longer one of them")

    def close(self) -> list[asyncio.Task[None]]:
        """Stop both connections; return the tasks still winding down."""
        return [t for t in (self._small.close(), self._bulk.close()) if t is not None]

    def open(self) -> None:
        """Connect the small-message stream now, before there is anything to send.

        As etcd dials every peer when it is added: a follower otherwise never connects to the
        other followers (only the leader sends them anything), counts them as inactive, and
        refuses a member removal that etcd's strict reconfiguration check accepts.
        """
        self._small.open()

    def stats(self) -> PeerStats:
        return PeerStats(
            self._active,
            self._messages_sent,
            self._bytes_sent,
            self._messages_dropped,
            self._small.queued_messages + self._bulk.queued_messages,
            self._writes,
        )

    # --- called by the streams ----------------------------------------------------

    def count_sent(self, messages: int, size_bytes: int) -> None:
        self._writes += 1
        self._messages_sent += messages
        self._bytes_sent += size_bytes

    def count_dropped(self, messages: int) -> None:
        self._messages_dropped += messages

    def stream_up(self, kind: StreamKind, url: str) -> None:
        self._up.add(kind)
        if self._active is not True:
            self._active = True
            self.ctx.logger.info("peer %s became active (%s)", self.id_hex, url)

    def stream_moved(self, kind: StreamKind) -> None:
        self._up.discard(kind)

    def stream_down(self, kind: StreamKind, reason: str) -> None:
        self._up.discard(kind)
        if self._up or self._active is False:
            return
        if self._active is None:
            self.ctx.logger.warning("peer %s is unreachable: %s", self.id_hex, reason)
        else:
            self.ctx.logger.warning("peer %s became inactive: %s", self.id_hex, reason)
        self._active = False

    def log_refusal(self, url: str, reply: HelloReply) -> None:
        ctx = self.ctx
        if reply.status is HelloStatus.CLUSTER_MISMATCH:
            self._log_limited(
                "refused",
                "peer %s at %s refused us: it is in cluster %x, we are in cluster %x"
                " (is one member's data dir from another cluster?)",
                self.id_hex,
                url,
                reply.cluster_id,
                ctx.cluster_id,
            )
        elif reply.status is HelloStatus.WRONG_RECEIVER:
            self._log_limited(
                "refused",
                "%s is member %x, not peer %s as we expected (stale peer URLs or data dir?)",
                url,
                reply.member_id,
                self.id_hex,
            )
        else:
            self._log_limited(
                "refused", "peer %s at %s refused us: %s", self.id_hex, url, reply.status.name
            )

    def _log_limited(self, what: str, fmt: str, *args: object) -> None:
        if self.ctx.log_limiter.allow((what, self.id)):
            self.ctx.logger.warning(fmt, *args)


def _parse_urls(urls: Sequence[str]) -> tuple[tuple[str, PeerAddress], ...]:
    return tuple((url, parse_peer_url(url)) for url in urls)


def _set_nodelay(writer: asyncio.StreamWriter) -> None:
    # Small frames (heartbeats) must leave at once, not wait for Nagle's algorithm.
    sock = writer.get_extra_info("socket")
    if sock is not None and sock.family in (socket.AF_INET, socket.AF_INET6):
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
