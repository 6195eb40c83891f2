"""The peer protocol's framing and handshake (pure: no sockets here).

A connection starts with a fixed-size ``Hello`` from the dialer and a ``HelloReply`` from
the listener; after an OK reply both directions carry frames:

    frame := kind:u8 length:u32 payload[length]

The dialer sends raft traffic (MESSAGE, SNAP_BEGIN, SNAP_CHUNK); the listener only ever
answers with SNAP_ACK (or one INFO frame on an INFO connection). Each connection is
therefore one-way for raft messages, and each member dials its own connections to every
peer it sends to.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from enum import IntEnum

from kvorum.transport.codec import Buffer, CodecError

__all__ = [
    "FRAME_HEADER",
    "INFO_STATUS",
    "MAGIC",
    "PROTOCOL_VERSION",
    "SNAP_ACK",
    "SNAP_BEGIN",
    "SNAP_CHUNK",
    "FrameKind",
    "FrameReader",
    "Hello",
    "HelloReply",
    "HelloStatus",
    "StreamKind",
    "frame_header",
]

MAGIC = b"KVRM"
PROTOCOL_VERSION = 1


class StreamKind(IntEnum):
    """What a connection is for; chosen by the dialer in its ``Hello``."""

    SMALL = 1  # latency-sensitive raft messages: heartbeats, votes, responses
    BULK = 2  # appends, proposals and chunked snapshots
    INFO = 3  # one cluster-info request, answered with one INFO frame, then closed


class HelloStatus(IntEnum):
    OK = 0
    BAD_VERSION = 1
    CLUSTER_MISMATCH = 2
    WRONG_RECEIVER = 3
    BAD_KIND = 4


class FrameKind(IntEnum):
    MESSAGE = 1  # payload: one encoded raft message
    SNAP_BEGIN = 2  # payload: SNAP_BEGIN header, then the SNAP message without its data
    SNAP_CHUNK = 3  # payload: SNAP_CHUNK header, then the next piece of snapshot data
    SNAP_ACK = 4  # listener to dialer; payload: SNAP_ACK
    INFO = 5  # listener to dialer; payload: INFO_STATUS, then the cluster info bytes


FRAME_HEADER = struct.Struct(">BI")
SNAP_BEGIN = struct.Struct(">QQ")  # snapshot sequence number, total data bytes
SNAP_CHUNK = struct.Struct(">Q")  # snapshot sequence number
SNAP_ACK = struct.Struct(">QB")  # snapshot sequence number, 1 if delivered whole
INFO_STATUS = struct.Struct(">B")  # 0: info follows; 1: the member has no info to give

_HELLO = struct.Struct(">4sHBQQQ")
_HELLO_REPLY = struct.Struct(">4sHBQQ")
_FRAME_KINDS = frozenset(int(k) for k in FrameKind)
_STREAM_KINDS = frozenset(int(k) for k in StreamKind)
_HELLO_STATUSES = frozenset(int(s) for s in HelloStatus)


def frame_header(kind: FrameKind, length: int) -> bytes:
    return FRAME_HEADER.pack(kind, length)


@dataclass(frozen=True, slots=True)
class Hello:
    """The dialer's opening: who it is, whom it means to reach, and in which cluster."""

    kind: StreamKind
    cluster_id: int
    sender_id: int
    receiver_id: int

    SIZE = _HELLO.size

    def encode(self) -> bytes:
        return _HELLO.pack(
            MAGIC, PROTOCOL_VERSION, self.kind, self.cluster_id, self.sender_id, self.receiver_id
        )

    @staticmethod
    def decode(data: Buffer) -> tuple[Hello, int]:
        """The hello and the protocol version it was sent with (checked by the caller)."""
        if len(data) != _HELLO.size:
            raise CodecError(f"hello must be {_HELLO.size} bytes, got {len(data)}")
        magic, version, kind, cluster_id, sender, receiver = _HELLO.unpack(data)
        if magic != MAGIC:
            raise CodecError(f"not a kvorum peer connection (opening bytes {bytes(magic)!r})")
        if kind not in _STREAM_KINDS:
            raise CodecError(f"unknown stream kind {kind}")
        return Hello(StreamKind(kind), cluster_id, sender, receiver), version


@dataclass(frozen=True, slots=True)
class HelloReply:
    """The listener's answer, naming its own cluster and member id so a refusal is clear."""

    status: HelloStatus
    cluster_id: int
    member_id: int

    SIZE = _HELLO_REPLY.size

    def encode(self) -> bytes:
        return _HELLO_REPLY.pack(
            MAGIC, PROTOCOL_VERSION, self.status, self.cluster_id, self.member_id
        )

    @staticmethod
    def decode(data: Buffer) -> HelloReply:
        if len(data) != _HELLO_REPLY.size:
            raise CodecError(f"hello reply must be {_HELLO_REPLY.size} bytes, got {len(data)}")
        magic, _version, status, cluster_id, member_id = _HELLO_REPLY.unpack(data)
        if magic != MAGIC:
            raise CodecError(f"peer did not answer as a kvorum member ({bytes(magic)!r})")
        if status not in _HELLO_STATUSES:
            raise CodecError(f"unknown hello status {status}")
        return HelloReply(HelloStatus(status), cluster_id, member_id)


class FrameReader:
    """Splits a byte stream into frames; refuses frames longer than ``max_frame_bytes``.

    ``feed`` returns the frames completed by the new data as ``(kind, payload)`` with the
    payload a memoryview over an immutable ``bytes`` object, so callers may keep it. Bytes
    of an unfinished frame are held until it completes; when a frame spans many reads
    they are joined once, when the frame is whole.
    """

    __slots__ = ("_max_frame_bytes", "_need", "_partial")

    def __init__(self, max_frame_bytes: int) -> None:
        self._max_frame_bytes = max_frame_bytes
        self._partial = bytearray()
        # Invariant: while _partial is non-empty, nothing can be parsed until it holds
        # at least _need bytes (a whole header, or a whole frame once the header is known).
        self._need = 0

    @property
    def buffered_bytes(self) -> int:
        return len(self._partial)

    def feed(self, data: bytes) -> list[tuple[int, memoryview]]:
        if self._partial:
            self._partial += data
            if len(self._partial) < self._need:
                return []
            data = bytes(self._partial)
            self._partial = bytearray()
        view = memoryview(data)
        end = len(view)
        off = 0
        frames: list[tuple[int, memoryview]] = []
        header = FRAME_HEADER.size
        unpack = FRAME_HEADER.unpack_from
        while True:
            if end - off < header:
                self._need = header
                break
            kind, length = unpack(view, off)
            if kind not in _FRAME_KINDS:
                raise CodecError(f"unknown frame kind {kind}")
            if length > self._max_frame_bytes:
                raise CodecError(
                    f"frame of {length} bytes exceeds the limit of {self._max_frame_bytes}"
                )
            if end - off - header < length:
                self._need = header + length
                break
            start = off + header
            off = start + length
            frames.append((kind, view[start:off]))
        if off < end:
            self._partial = bytearray(view[off:])
        return frames
