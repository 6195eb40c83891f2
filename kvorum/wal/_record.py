"""Framing of WAL records and the binary form of each record's payload.

A record on disk::

    offset 0   u32 payload length (little endian)
           4   u8  record type
           5   3 reserved bytes, zero
           8   u32 CRC-32 of bytes 0..8 followed by the payload
          12   payload
               zero padding so the next record starts on an 8-byte boundary

Invariants:
- Every record starts at an offset that is a multiple of ``ALIGN`` (8). The length
  therefore sits inside one aligned 8-byte word, which never straddles a disk sector,
  so a crash can tear a payload but never leave half a length behind.
- The CRC covers the length and the type as well as the payload, so a flipped bit in
  any of them is caught. Each record is checked on its own (not chained): the reader
  can then ask "does any valid record follow this bad one?", which is how it tells a
  torn tail from corruption of data that was fsync'd.
- A header of twelve zero bytes is not a record: type 0 does not exist. Preallocated
  space is zero, so the first all-zero header marks the end of the log.
"""

from __future__ import annotations

import struct
import zlib
from dataclasses import dataclass
from enum import IntEnum

from kvorum.raft.types import Entry, EntryType, HardState

ALIGN = 8
PREFIX = struct.Struct("<IB3x")  # the part of the header the CRC covers
HEADER = struct.Struct("<IB3xI")
HEADER_SIZE = HEADER.size  # 12
_CRC = struct.Struct("<I")
_ZEROS = tuple(bytes(n) for n in range(ALIGN))

WAL_MAGIC = b"KVORUMWL"
FORMAT_VERSION = 1

MAX_PAYLOAD_BYTES = 1 << 31
"""No single record is larger (the u32 length allows 4 GiB; half keeps arithmetic safe)."""


class RecordType(IntEnum):
    METADATA = 1  # first record of every segment: who this log belongs to
    SEGMENT = 2  # second record of every segment: its sequence number and first index
    ENTRY = 3
    HARD_STATE = 4
    SNAPSHOT = 5  # marker: a snapshot at (term, index) was taken or installed


RECORD_TYPES = frozenset(int(t) for t in RecordType)


def padding(payload_bytes: int) -> int:
    """Zero bytes after a payload of this size so the next record is aligned."""
    return -(HEADER_SIZE + payload_bytes) % ALIGN


def frame_size(payload_bytes: int) -> int:
    """Bytes a record with a payload of this size occupies on disk."""
    return HEADER_SIZE + payload_bytes + padding(payload_bytes)


def crc_of(prefix: bytes | memoryview, payload: bytes | memoryview) -> int:
    return zlib.crc32(payload, zlib.crc32(prefix))


def frame(record_type: RecordType, payload: bytes) -> bytes:
    """One record, header and padding included."""
    size = len(payload)
    prefix = PREFIX.pack(size, record_type)
    crc = zlib.crc32(payload, zlib.crc32(prefix))
    return b"".join((prefix, _CRC.pack(crc), payload, _ZEROS[padding(size)]))


# --- payloads ---------------------------------------------------------------------

_ENTRY = struct.Struct("<QQB")
_HARD_STATE = struct.Struct("<QQQ")
_SNAPSHOT = struct.Struct("<QQ")
_SEGMENT = struct.Struct("<QQ")
_METADATA = struct.Struct("<8sHQQ")
_ENTRY_TYPES = {int(t): t for t in EntryType}
_ENTRY_TYPE_ENTRY = int(RecordType.ENTRY)


def append_entry_frame(parts: list[bytes], entry: Entry) -> int:
    """Append the pieces of one entry record to ``parts``; return the bytes added.

    Written without building the payload first: the entry's data is not copied
    until the caller joins the whole batch, once.
    """
    data = entry.data
    head = _ENTRY.pack(entry.term, entry.index, entry.type)
    size = _ENTRY.size + len(data)
    prefix = PREFIX.pack(size, _ENTRY_TYPE_ENTRY)
    crc = zlib.crc32(data, zlib.crc32(head, zlib.crc32(prefix)))
    pad = padding(size)
    parts += (prefix, _CRC.pack(crc), head, data, _ZEROS[pad])
    return HEADER_SIZE + size + pad


def decode_entry(payload: memoryview) -> Entry:
    if len(payload) < _ENTRY.size:
        raise ValueError(f"entry record of {len(payload)} bytes is shorter than its header")
    term, index, kind = _ENTRY.unpack_from(payload)
    entry_type = _ENTRY_TYPES.get(kind)
    if entry_type is None:
        raise ValueError(f"unknown entry type {kind}")
    return Entry(term, index, entry_type, bytes(payload[_ENTRY.size :]))


def encode_hard_state(hard_state: HardState) -> bytes:
    return _HARD_STATE.pack(hard_state.term, hard_state.vote, hard_state.commit)


def decode_hard_state(payload: memoryview) -> HardState:
    if len(payload) != _HARD_STATE.size:
        raise ValueError(f"hard state record has {len(payload)} bytes, expected 24")
    term, vote, commit = _HARD_STATE.unpack(payload)
    return HardState(term, vote, commit)


def encode_snapshot_marker(term: int, index: int) -> bytes:
    return _SNAPSHOT.pack(term, index)


def decode_snapshot_marker(payload: memoryview) -> tuple[int, int]:
    if len(payload) != _SNAPSHOT.size:
        raise ValueError(f"snapshot marker has {len(payload)} bytes, expected 16")
    term, index = _SNAPSHOT.unpack(payload)
    return term, index


def encode_segment_info(seq: int, first_index: int) -> bytes:
    return _SEGMENT.pack(seq, first_index)


def decode_segment_info(payload: memoryview) -> tuple[int, int]:
    if len(payload) != _SEGMENT.size:
        raise ValueError(f"segment record has {len(payload)} bytes, expected 16")
    seq, first_index = _SEGMENT.unpack(payload)
    return seq, first_index


@dataclass(frozen=True, slots=True)
class WALMetadata:
    """Who the log belongs to. Written first in every segment; never changes."""

    member_id: int
    cluster_id: int
    extra: bytes = b""  # free for the member process (e.g. its name); opaque here

    def encode(self) -> bytes:
        head = _METADATA.pack(WAL_MAGIC, FORMAT_VERSION, self.member_id, self.cluster_id)
        return head + self.extra

    @classmethod
    def decode(cls, payload: memoryview | bytes) -> WALMetadata:
        """Parse a metadata payload; ValueError says why it is not kvorum's."""
        if len(payload) < _METADATA.size:
            raise ValueError(f"metadata record of {len(payload)} bytes is too short")
        magic, version, member_id, cluster_id = _METADATA.unpack_from(payload)
        if magic != WAL_MAGIC:
            raise ValueError(f"metadata magic is {bytes(magic)!r}, expected {WAL_MAGIC!r}")
        if version > FORMAT_VERSION:
            raise ValueError(
                f"format version {version} was written by a newer kvorum; "
                f"this build reads up to version {FORMAT_VERSION}"
            )
        return cls(member_id, cluster_id, bytes(payload[_METADATA.size :]))
