"""The envelope around a proposal: the request id that wakes its waiter, then the payload.

A NORMAL entry's data is ``u64 request id (big-endian) || payload``; the payload's format
belongs to the apply layer. An empty entry is the no-op a new leader appends (thesis
§6.4) and has no envelope. A CONF_CHANGE entry keeps ``ConfChange``'s own encoding; its
``context`` starts with the request id in the same way.

Request ids are unique per member and, as etcd's, unlikely to repeat across restarts:
the top 16 bits are the member id's low 16 bits, the rest a millisecond clock reading
taken at start shifted left by 8, incremented per request.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from kvorum.raft.types import ConfChange, Entry, EntryType

__all__ = [
    "ENVELOPE_HEADER_BYTES",
    "Envelope",
    "RequestIdGenerator",
    "decode_conf_change",
    "decode_envelope",
    "encode_conf_change",
    "encode_envelope",
]

_ID = struct.Struct(">Q")
ENVELOPE_HEADER_BYTES = _ID.size
_SUFFIX_BITS = 48
_COUNTER_BITS = 8
_CLOCK_BITS = _SUFFIX_BITS - _COUNTER_BITS


@dataclass(frozen=True, slots=True)
class Envelope:
    request_id: int
    payload: bytes


def encode_envelope(request_id: int, payload: bytes) -> bytes:
    return _ID.pack(request_id) + payload


def decode_envelope(entry: Entry) -> Envelope | None:
    """The envelope of a NORMAL entry; None for the leader's no-op and for conf changes."""
    data = entry.data
    if entry.type != EntryType.NORMAL or not data:
        return None
    if len(data) < _ID.size:
        raise ValueError(f"entry {entry.index}: {len(data)} bytes is too short for an envelope")
    (request_id,) = _ID.unpack_from(data)
    return Envelope(request_id, bytes(data[_ID.size :]))


def encode_conf_change(request_id: int, cc: ConfChange) -> ConfChange:
    """``cc`` with the request id put in front of its context."""
    return ConfChange(cc.type, cc.node_id, _ID.pack(request_id) + cc.context)


def decode_conf_change(entry: Entry) -> tuple[int, ConfChange]:
    """A CONF_CHANGE entry's request id and the change with its original context."""
    wrapped = ConfChange.decode(entry.data)
    if len(wrapped.context) < _ID.size:
        raise ValueError(f"entry {entry.index}: conf change context lacks a request id")
    (request_id,) = _ID.unpack_from(wrapped.context)
    return request_id, ConfChange(wrapped.type, wrapped.node_id, wrapped.context[_ID.size :])


class RequestIdGenerator:
    """Request ids for one member: member prefix, start-time clock, per-request counter."""

    __slots__ = ("_prefix", "_suffix")

    def __init__(self, member_id: int, now_ms: int) -> None:
        self._prefix = (member_id & 0xFFFF) << _SUFFIX_BITS
        self._suffix = (now_ms & ((1 << _CLOCK_BITS) - 1)) << _COUNTER_BITS

    def next(self) -> int:
        self._suffix = (self._suffix + 1) & ((1 << _SUFFIX_BITS) - 1)
        return self._prefix | self._suffix
