"""Binary encoding of raft messages for the peer wire (pure: bytes in, values out).

Layout, all integers big-endian and fixed width so that ``struct`` does the work in C:

    message  := header entry* context snapshot?
    header   := type:u8 flags:u8 to:u64 frm:u64 term:u64 log_term:u64 index:u64
                commit:u64 reject_hint:u64 entry_count:u32 context_len:u32
    entry    := term:u64 index:u64 type:u8 data_len:u32 data
    snapshot := index:u64 term:u64 voter_count:u32 learner_count:u32 data_len:u64
                voter:u64* learner:u64* data

Only members of one kvorum cluster read this format, so it is ours rather than etcd's
protobuf ``raftpb``; the numbering of message and entry types is raftpb's (see
``kvorum.raft.types``). Every length is checked against the bytes that remain before it is
trusted, so a corrupt or hostile frame ends in one ``CodecError`` and never allocates more
than the frame it came in.
"""

from __future__ import annotations

import struct
from collections.abc import Sequence

from kvorum.raft.types import (
    ConfState,
    Entry,
    EntryType,
    Message,
    MessageType,
    Snapshot,
    SnapshotMetadata,
)

__all__ = ["CodecError", "decode_message", "encode_message", "encode_message_parts"]


class CodecError(ValueError):
    """Bytes that are not a valid encoding, or a value that cannot be encoded."""


_HEADER = struct.Struct(">BBQQQQQQQII")
_ENTRY = struct.Struct(">QQBI")
_SNAPSHOT = struct.Struct(">QQIIQ")

_FLAG_REJECT = 0x01
_FLAG_SNAPSHOT = 0x02
_FLAGS_KNOWN = _FLAG_REJECT | _FLAG_SNAPSHOT

# Lookup tables: indexing a tuple is far cheaper than calling the enum constructor per value.
_MESSAGE_TYPES: tuple[MessageType, ...] = tuple(sorted(MessageType, key=int))
_ENTRY_TYPES: tuple[EntryType, ...] = tuple(sorted(EntryType, key=int))
assert [int(t) for t in _MESSAGE_TYPES] == list(range(len(_MESSAGE_TYPES)))
assert [int(t) for t in _ENTRY_TYPES] == list(range(len(_ENTRY_TYPES)))

Buffer = bytes | bytearray | memoryview


def encode_message_parts(msg: Message, out: list[Buffer]) -> int:
    """Append the encoding of ``msg`` to ``out`` as pieces; return their total length.

    Pieces let a caller join many messages (and their frame headers) with a single copy.
    Entry and snapshot payloads are appended as they are, not copied.
    """
    try:
        flags = (_FLAG_REJECT if msg.reject else 0) | (
            _FLAG_SNAPSHOT if msg.snapshot is not None else 0
        )
        context = msg.context
        entries = msg.entries
        out.append(
            _HEADER.pack(
                msg.type,
                flags,
                msg.to,
                msg.frm,
                msg.term,
                msg.log_term,
                msg.index,
                msg.commit,
                msg.reject_hint,
                len(entries),
                len(context),
            )
        )
        size = _HEADER.size
        pack_entry = _ENTRY.pack
        for entry in entries:
            data = entry.data
            out.append(pack_entry(entry.term, entry.index, entry.type, len(data)))
            size += _ENTRY.size
            if data:
                out.append(data)
                size += len(data)
        if context:
            out.append(context)
            size += len(context)
        if msg.snapshot is not None:
            size += _encode_snapshot(msg.snapshot, out)
    except struct.error as exc:
        raise CodecError(f"cannot encode {msg.type!r} message: {exc}") from None
    return size


def _encode_snapshot(snap: Snapshot, out: list[Buffer]) -> int:
    meta = snap.metadata
    voters = meta.conf_state.voters
    learners = meta.conf_state.learners
    out.append(_SNAPSHOT.pack(meta.index, meta.term, len(voters), len(learners), len(snap.data)))
    ids = voters + learners
    if ids:
        out.append(struct.pack(f">{len(ids)}Q", *ids))
    if snap.data:
        out.append(snap.data)
    return _SNAPSHOT.size + 8 * len(ids) + len(snap.data)


def encode_message(msg: Message) -> bytes:
    """The encoding of ``msg`` as one ``bytes`` object."""
    parts: list[Buffer] = []
    encode_message_parts(msg, parts)
    return b"".join(parts)


def decode_message(buf: Buffer) -> Message:
    """Decode exactly one message that fills ``buf``; raise ``CodecError`` otherwise.

    Payload bytes are copied out of ``buf``, so the caller may reuse the buffer afterwards.
    """
    view = buf if isinstance(buf, memoryview) else memoryview(buf)
    end = len(view)
    if end < _HEADER.size:
        raise CodecError(f"message of {end} bytes is shorter than its {_HEADER.size}-byte header")
    (
        type_code,
        flags,
        to,
        frm,
        term,
        log_term,
        index,
        commit,
        reject_hint,
        entry_count,
        context_len,
    ) = _HEADER.unpack_from(view, 0)
    if type_code >= len(_MESSAGE_TYPES):
        raise CodecError(f"unknown message type {type_code}")
    if flags & ~_FLAGS_KNOWN:
        raise CodecError(f"unknown message flags {flags:#04x}")
    off = _HEADER.size
    # Each entry needs at least its header: refuse counts the buffer cannot hold before
    # building anything, so a forged count cannot make us loop or allocate.
    if entry_count * _ENTRY.size > end - off:
        raise CodecError(f"message claims {entry_count} entries but has {end - off} bytes left")
    entries: list[Entry] = []
    unpack_entry = _ENTRY.unpack_from
    entry_header = _ENTRY.size
    for _ in range(entry_count):
        if off + entry_header > end:
            raise CodecError(f"entry header at offset {off} runs past the end ({end} bytes)")
        e_term, e_index, e_type, data_len = unpack_entry(view, off)
        off += entry_header
        if e_type >= len(_ENTRY_TYPES):
            raise CodecError(f"unknown entry type {e_type} at offset {off - entry_header}")
        if off + data_len > end:
            raise CodecError(f"entry data of {data_len} bytes at offset {off} runs past the end")
        data = bytes(view[off : off + data_len]) if data_len else b""
        off += data_len
        entries.append(Entry(e_term, e_index, _ENTRY_TYPES[e_type], data))
    if off + context_len > end:
        raise CodecError(f"context of {context_len} bytes at offset {off} runs past the end")
    context = bytes(view[off : off + context_len]) if context_len else b""
    off += context_len
    snapshot = None
    if flags & _FLAG_SNAPSHOT:
        snapshot, off = _decode_snapshot(view, off, end)
    if off != end:
        raise CodecError(f"{end - off} trailing bytes after a {_MESSAGE_TYPES[type_code].name}")
    return Message(
        _MESSAGE_TYPES[type_code],
        to,
        frm,
        term,
        log_term,
        index,
        tuple(entries),
        commit,
        snapshot,
        bool(flags & _FLAG_REJECT),
        reject_hint,
        context,
    )


def _decode_snapshot(view: memoryview, off: int, end: int) -> tuple[Snapshot, int]:
    if off + _SNAPSHOT.size > end:
        raise CodecError(f"snapshot header at offset {off} runs past the end ({end} bytes)")
    index, term, n_voters, n_learners, data_len = _SNAPSHOT.unpack_from(view, off)
    off += _SNAPSHOT.size
    n_ids = n_voters + n_learners
    if off + 8 * n_ids + data_len > end:
        raise CodecError(
            f"snapshot claims {n_ids} member ids and {data_len} data bytes"
            f" but has {end - off} bytes left"
        )
    ids: Sequence[int] = struct.unpack_from(f">{n_ids}Q", view, off) if n_ids else ()
    off += 8 * n_ids
    data = bytes(view[off : off + data_len]) if data_len else b""
    off += data_len
    conf = ConfState(tuple(ids[:n_voters]), tuple(ids[n_voters:]))
    return Snapshot(data, SnapshotMetadata(conf, index, term)), off
