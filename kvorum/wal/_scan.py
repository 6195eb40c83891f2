"""Verify the records of one segment and find where its valid log ends.

The rule that keeps acknowledged data safe: a record may be discarded only if it is
the torn end of the last segment — nothing valid follows it. Such a record was being
written when the process died and was never fsync'd, so never acknowledged. Any other
bad record raises ``WALCorruptError`` naming the file and byte offset.

"Nothing valid follows" is tested by looking for a record that verifies at any aligned
offset after the bad one. One false alarm is possible: a torn entry whose own data
holds a whole valid WAL record (a kvorum WAL stored as a value). That errs on the safe
side: the member refuses to start, with the offset, rather than drop data.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from kvorum.wal._errors import WALCorruptError
from kvorum.wal._record import (
    ALIGN,
    HEADER,
    HEADER_SIZE,
    RECORD_TYPES,
    crc_of,
    frame_size,
)


@dataclass(frozen=True, slots=True)
class TornTail:
    """Bytes ``[offset, end)`` of the last segment hold an unfinished write."""

    offset: int
    end: int
    reason: str


@dataclass(frozen=True, slots=True)
class SegmentScan:
    records: list[tuple[int, int, memoryview]]  # (offset, record type, payload)
    end: int  # byte offset just past the last valid record
    torn: TornTail | None


_ZERO_CHUNK = bytes(1 << 20)


def data_end(buf: bytes) -> int:
    """Offset just past the last non-zero byte of ``buf`` (0 if all zero).

    Compares whole chunks against zeros from the end (``startswith`` is a memcmp
    without a copy): a preallocated segment is mostly zeros, and this runs on every open.
    """
    end = len(buf)
    while end > 0:
        start = max(0, end - len(_ZERO_CHUNK))
        if not buf.startswith(_ZERO_CHUNK[: end - start], start):
            return start + len(buf[start:end].rstrip(b"\x00"))
        end = start
    return 0


def _check_at(buf: bytes, offset: int) -> str | None:
    """Why the record at ``offset`` is bad, or None if it verifies."""
    length, record_type, crc = HEADER.unpack_from(buf, offset)
    if record_type not in RECORD_TYPES:
        return f"unknown record type {record_type} (length field {length})"
    start = offset + HEADER_SIZE
    if start + length > len(buf):
        return f"record of {length} bytes runs past the end of the file ({len(buf)} bytes)"
    view = memoryview(buf)
    if crc_of(view[offset : offset + 8], view[start : start + length]) != crc:
        return f"CRC mismatch in a record of type {record_type}, {length} bytes"
    return None


def _valid_record_after(buf: bytes, offset: int, end: int) -> int | None:
    """Offset of the first record that verifies at an aligned position in
    ``(offset, end)``, or None. Only runs on the error path."""
    last_start = min(end, len(buf) - HEADER_SIZE)
    for candidate in range(offset + ALIGN, last_start + 1, ALIGN):
        # Cheap filters before the CRC: a known type and a length that fits.
        if buf[candidate + 4] not in RECORD_TYPES:
            continue
        if _check_at(buf, candidate) is None:
            return candidate
    return None


def scan_segment(path: Path, buf: bytes, is_last: bool) -> SegmentScan:
    """Verify every record in ``buf`` (the whole file at ``path``).

    Raises WALCorruptError unless each record verifies, or the bad part is the tail of
    the last segment with no valid record after it (then ``torn`` describes it).
    """
    view = memoryview(buf)
    size = len(buf)
    records: list[tuple[int, int, memoryview]] = []
    offset = 0
    nonzero_end = -1  # offset just past the last non-zero byte; computed when needed
    reason: str | None = None
    while offset + HEADER_SIZE <= size:
        length, record_type, crc = HEADER.unpack_from(buf, offset)
        if length == 0 and record_type == 0 and crc == 0:
            break  # zero header: end of log, if nothing follows (checked below)
        reason = _check_at(buf, offset)
        if reason is not None:
            break
        start = offset + HEADER_SIZE
        records.append((offset, record_type, view[start : start + length]))
        offset += frame_size(length)
    if reason is None:
        nonzero_end = data_end(buf)
        if nonzero_end <= offset:
            # offset may pass the file end by a torn padding; the payload verified.
            return SegmentScan(records, offset, None)
        reason = "non-zero bytes where the log should end (an unfinished record?)"
    if not is_last:
        raise WALCorruptError(path, offset, reason + " (not the last segment)")
    if nonzero_end < 0:
        nonzero_end = data_end(buf)
    follower = _valid_record_after(buf, offset, nonzero_end)
    if follower is not None:
        raise WALCorruptError(
            path,
            offset,
            f"{reason}; a valid record follows at offset {follower}, so this is not a torn write",
        )
    return SegmentScan(records, offset, TornTail(offset, max(nonzero_end, offset), reason))
