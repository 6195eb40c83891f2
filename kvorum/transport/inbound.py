"""Receiving: the peer listener, its handshake checks, frame decoding and snapshot reassembly.

Every accepted connection starts with a ``Hello``. A dialer from another cluster, or one
that believes it is talking to a different member, is refused with both sides' ids logged:
that is almost always a member started on a stale data dir or with stale peer URLs.
Connections from member ids this member does not know yet are accepted — a member that
was just added starts talking before everyone has applied its conf change, and raft
decides what to do with its messages.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import ssl
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any

from kvorum.raft.types import Logger, Message, MessageType
from kvorum.transport.backoff import RateLimiter
from kvorum.transport.codec import CodecError, decode_message
from kvorum.transport.limits import TransportLimits
from kvorum.transport.urls import format_peer_url, parse_peer_url
from kvorum.transport.wire import (
    INFO_STATUS,
    PROTOCOL_VERSION,
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

__all__ = ["AcceptPeerCert", "Listener"]

AcceptPeerCert = Callable[[dict[str, Any] | None, str], Awaitable[bool]]
"""Decides, after a TLS handshake, whether the verified peer may talk raft (its certificate's
common name, the addresses it names); it gets ``SSLObject.getpeercert()`` and the remote IP."""


@dataclass(slots=True)
class _Reassembly:
    """A snapshot arriving in chunks: its message without data, and the data so far."""

    seq: int
    total_bytes: int
    message: Message
    data: bytearray


class Listener:
    """Accepts peer connections on the listen URLs and hands decoded messages to raft."""

    def __init__(
        self,
        member_id: int,
        cluster_id: int,
        limits: TransportLimits,
        server_ssl: ssl.SSLContext | None,
        on_message: Callable[[Message], None],
        logger: Logger,
        log_limiter: RateLimiter,
        accept_peer_cert: AcceptPeerCert | None = None,
    ) -> None:
        self._member_id = member_id
        self._accept_peer_cert = accept_peer_cert
        self._cluster_id = cluster_id
        self._limits = limits
        self._server_ssl = server_ssl
        self._on_message = on_message
        self._logger = logger
        self._log_limiter = log_limiter
        self._servers: list[asyncio.Server] = []
        self._handlers: dict[asyncio.Task[Any], asyncio.StreamWriter] = {}
        # The newest connection per (sender, kind); an older one it replaces is closed, so
        # a peer that restarted never leaves a half-open connection behind here.
        self._streams: dict[tuple[int, StreamKind], asyncio.StreamWriter] = {}
        self.info_provider: Callable[[], bytes] | None = None
        self.bound_urls: tuple[str, ...] = ()

    async def start(self, urls: Sequence[str]) -> None:
        bound: list[str] = []
        try:
            for url in urls:
                address = parse_peer_url(url)
                if address.tls and self._server_ssl is None:
                    raise ValueError(f"listen URL {url} needs a server TLS context")
                server = await asyncio.start_server(
                    self._on_connection,
                    address.host,
                    address.port,
                    ssl=self._server_ssl if address.tls else None,
                )
                self._servers.append(server)
                for sock in server.sockets:
                    host, port = sock.getsockname()[:2]
                    bound.append(format_peer_url(host, port, address.tls))
        except BaseException:
            await self.stop()
            raise
        self.bound_urls = tuple(bound)

    async def stop(self) -> None:
        servers, self._servers = self._servers, []
        for server in servers:
            server.close()
        # Closing a connection ends its handler at its next read; cancelling handlers
        # instead would trip asyncio 3.11's stream callback, which assumes they finish.
        for writer in self._handlers.values():
            writer.close()
        handlers = list(self._handlers)
        if handlers:
            _, stuck = await asyncio.wait(handlers, timeout=self._limits.handshake_timeout_s)
            for task in stuck:
                task.cancel()
            await asyncio.gather(*stuck, return_exceptions=True)
        for server in servers:
            await server.wait_closed()

    async def _on_connection(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._handlers[task] = writer
        try:
            if self._accept_peer_cert is not None and not await self._peer_cert_accepted(writer):
                return
            await self._serve(reader, writer)
        except (OSError, asyncio.IncompleteReadError, TimeoutError) as exc:
            self._logger.debug("peer connection from %s ended: %r", _peer_name(writer), exc)
        except Exception as exc:  # a bug here must not go unnoticed, nor kill the listener
            self._logger.error("peer connection from %s failed: %r", _peer_name(writer), exc)
        finally:
            self._handlers.pop(task, None)
            writer.close()

    async def _peer_cert_accepted(self, writer: asyncio.StreamWriter) -> bool:
        ssl_object = writer.get_extra_info("ssl_object")
        if self._accept_peer_cert is None or ssl_object is None:
            return True
        if await self._accept_peer_cert(ssl_object.getpeercert(), _peer_host(writer)):
            return True
        self._warn_limited(
            ("bad-cert", _peer_host(writer)),
            "refused a peer connection from %s: its certificate is not allowed",
            _peer_name(writer),
        )
        return False

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        limits = self._limits
        try:
            async with asyncio.timeout(limits.handshake_timeout_s):
                hello, version = Hello.decode(await reader.readexactly(Hello.SIZE))
        except (TimeoutError, CodecError) as exc:
            self._warn_limited(
                ("bad-hello", _peer_host(writer)),
                "refused a peer connection from %s: %s",
                _peer_name(writer),
                str(exc) or "no handshake in time",
            )
            return
        status = self._check(hello, version)
        writer.write(HelloReply(status, self._cluster_id, self._member_id).encode())
        if status is not HelloStatus.OK:
            self._log_refusal(hello, version, status, writer)
            with contextlib.suppress(TimeoutError, OSError):
                async with asyncio.timeout(limits.handshake_timeout_s):
                    await writer.drain()
            return
        if hello.kind is StreamKind.INFO:
            await self._serve_info(writer)
            return
        key = (hello.sender_id, hello.kind)
        previous = self._streams.get(key)
        if previous is not None:
            previous.close()
        self._streams[key] = writer
        try:
            await self._receive(hello, reader, writer)
        except CodecError as exc:
            self._warn_limited(
                ("bad-frame", hello.sender_id),
                "closing connection from member %x: %s",
                hello.sender_id,
                exc,
            )
        finally:
            if self._streams.get(key) is writer:
                del self._streams[key]

    def _check(self, hello: Hello, version: int) -> HelloStatus:
        if version != PROTOCOL_VERSION:
            return HelloStatus.BAD_VERSION
        if hello.kind is StreamKind.INFO:
            # A member about to join does not know the cluster id yet: 0 means "any".
            ok = hello.cluster_id in (0, self._cluster_id)
            return HelloStatus.OK if ok else HelloStatus.CLUSTER_MISMATCH
        if hello.cluster_id != self._cluster_id:
            return HelloStatus.CLUSTER_MISMATCH
        if hello.receiver_id != self._member_id:
            return HelloStatus.WRONG_RECEIVER
        return HelloStatus.OK

    def _log_refusal(
        self, hello: Hello, version: int, status: HelloStatus, writer: asyncio.StreamWriter
    ) -> None:
        key = ("refused", hello.sender_id, status)
        if status is HelloStatus.CLUSTER_MISMATCH:
            self._warn_limited(
                key,
                "refused member %x at %s: it is in cluster %x, this member %x is in cluster %x"
                " (is one member's data dir from another cluster?)",
                hello.sender_id,
                _peer_name(writer),
                hello.cluster_id,
                self._member_id,
                self._cluster_id,
            )
        elif status is HelloStatus.WRONG_RECEIVER:
            self._warn_limited(
                key,
                "refused member %x at %s: it wants member %x but this is member %x"
                " (stale peer URLs or data dir?)",
                hello.sender_id,
                _peer_name(writer),
                hello.receiver_id,
                self._member_id,
            )
        else:
            self._warn_limited(
                key,
                "refused member %x at %s: protocol version %d, this member speaks %d",
                hello.sender_id,
                _peer_name(writer),
                version,
                PROTOCOL_VERSION,
            )

    async def _serve_info(self, writer: asyncio.StreamWriter) -> None:
        provider = self.info_provider
        payload = INFO_STATUS.pack(1)
        if provider is not None:
            try:
                info = provider()
            except Exception as exc:
                self._logger.error("cluster info provider failed: %r", exc)
            else:
                if len(info) <= self._limits.max_cluster_info_bytes:
                    payload = INFO_STATUS.pack(0) + info
                else:
                    self._logger.error("cluster info of %d bytes is over the limit", len(info))
        writer.write(frame_header(FrameKind.INFO, len(payload)) + payload)
        async with asyncio.timeout(self._limits.write_timeout_s):
            await writer.drain()

    async def _receive(
        self, hello: Hello, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        """Decode frames as they arrive and deliver each read's messages together."""
        limits = self._limits
        frames = FrameReader(limits.max_frame_bytes)
        sender = hello.sender_id
        snapshot: _Reassembly | None = None
        read_chunk_bytes = limits.read_chunk_bytes
        while True:
            data = await reader.read(read_chunk_bytes)
            if not data:
                return
            # Each decoded message with its snapshot sequence number (0: not a snapshot).
            batch: list[tuple[Message, int]] = []
            for kind, payload in frames.feed(data):
                if kind == FrameKind.MESSAGE:
                    batch.append((decode_message(payload), 0))
                elif kind == FrameKind.SNAP_BEGIN:
                    if snapshot is not None:
                        raise CodecError("a snapshot began before the previous one completed")
                    snapshot = self._begin_snapshot(payload, writer)
                elif kind == FrameKind.SNAP_CHUNK:
                    if snapshot is None or len(payload) < SNAP_CHUNK.size:
                        raise CodecError("snapshot chunk outside a snapshot")
                    (seq,) = SNAP_CHUNK.unpack_from(payload)
                    if seq != snapshot.seq:
                        raise CodecError(f"chunk of snapshot {seq} inside snapshot {snapshot.seq}")
                    snapshot.data += payload[SNAP_CHUNK.size :]
                    if len(snapshot.data) > snapshot.total_bytes:
                        raise CodecError(
                            f"snapshot {seq} is longer than its announced {snapshot.total_bytes}"
                        )
                else:
                    raise CodecError(f"unexpected frame of kind {kind} from a dialer")
                if snapshot is not None and len(snapshot.data) == snapshot.total_bytes:
                    batch.append((_complete(snapshot), snapshot.seq))
                    snapshot = None
            for msg, snapshot_seq in batch:
                delivered = self._deliver(msg, sender)
                if snapshot_seq:
                    # Confirmed only once raft has taken the snapshot message in.
                    writer.write(_ack_frame(snapshot_seq, ok=delivered))

    def _deliver(self, msg: Message, sender: int) -> bool:
        if msg.frm != sender or msg.to != self._member_id:
            self._warn_limited(
                ("misaddressed", sender),
                "dropping a message from %x to %x on a connection from %x to %x",
                msg.frm,
                msg.to,
                sender,
                self._member_id,
            )
            return False
        try:
            self._on_message(msg)
        except Exception as exc:
            self._logger.error("handling a %s from %x failed: %r", msg.type.name, sender, exc)
            return False
        return True

    def _begin_snapshot(self, payload: memoryview, writer: asyncio.StreamWriter) -> _Reassembly:
        if len(payload) < SNAP_BEGIN.size:
            raise CodecError("snapshot header too short")
        seq, total_bytes = SNAP_BEGIN.unpack_from(payload)
        if total_bytes > self._limits.max_snapshot_bytes:
            writer.write(_ack_frame(seq, ok=False))
            raise CodecError(
                f"snapshot of {total_bytes} bytes is over the limit of"
                f" {self._limits.max_snapshot_bytes}"
            )
        message = decode_message(payload[SNAP_BEGIN.size :])
        if message.type != MessageType.SNAP or message.snapshot is None:
            raise CodecError(f"snapshot frame carries a {message.type.name} message")
        return _Reassembly(seq, total_bytes, message, bytearray())

    def _warn_limited(self, key: object, fmt: str, *args: object) -> None:
        if self._log_limiter.allow(key):
            self._logger.warning(fmt, *args)


def _ack_frame(seq: int, ok: bool) -> bytes:
    return frame_header(FrameKind.SNAP_ACK, SNAP_ACK.size) + SNAP_ACK.pack(seq, 1 if ok else 0)


def _complete(snapshot: _Reassembly) -> Message:
    message = snapshot.message
    assert message.snapshot is not None
    data = bytes(snapshot.data)
    return dataclasses.replace(message, snapshot=dataclasses.replace(message.snapshot, data=data))


def _peer_name(writer: asyncio.StreamWriter) -> str:
    peer = writer.get_extra_info("peername")
    if isinstance(peer, tuple) and len(peer) >= 2:
        return format_peer_url(str(peer[0]), int(peer[1]))[len("http://") :]
    return str(peer)


def _peer_host(writer: asyncio.StreamWriter) -> str:
    peer = writer.get_extra_info("peername")
    return str(peer[0]) if isinstance(peer, tuple) and peer else str(peer)
