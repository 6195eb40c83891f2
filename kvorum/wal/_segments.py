"""Segment files as units: creating one atomically, checking its head, repairing a torn
tail, and the read-only queries a member makes before opening the log.

Every segment starts with a METADATA record, a SEGMENT record (its own sequence number
and first index, checked against its name) and, if there is one yet, the hard state:
so the newest segment alone says whose log it is and where raft stood.
"""

from __future__ import annotations

import contextlib
import fcntl
import itertools
import logging
import os
from pathlib import Path

from kvorum.raft.types import EMPTY_HARD_STATE, HardState
from kvorum.wal._errors import NotAKvorumWALError, WALCorruptError, WALError
from kvorum.wal._files import (
    FILE_MODE,
    TEMP_SUFFIX,
    SegmentName,
    fsync_dir,
    list_segments,
    preallocate,
)
from kvorum.wal._record import (
    HEADER,
    HEADER_SIZE,
    RecordType,
    WALMetadata,
    crc_of,
    decode_hard_state,
    decode_segment_info,
    decode_snapshot_marker,
    encode_hard_state,
    encode_segment_info,
    frame,
)
from kvorum.wal._scan import SegmentScan, scan_segment

logger = logging.getLogger("kvorum.wal")
_ZERO_CHUNK = bytes(1 << 20)


def read_metadata(wal_dir: str | os.PathLike[str]) -> WALMetadata:
    """The identity recorded in the oldest segment of ``wal_dir``, without opening the log.

    Raises NotAKvorumWALError if the segment is not kvorum's (e.g. etcd's WAL), and
    WALError if there is no segment.
    """
    path = Path(wal_dir)
    try:
        names = list_segments(path)
    except OSError as exc:
        raise WALError(f"cannot list WAL directory {path}: {exc.strerror}") from exc
    if not names:
        raise WALError(f"no WAL segments in {path}")
    seg_path = path / names[0].filename
    try:
        with open(seg_path, "rb") as f:
            head = f.read(HEADER_SIZE)
            if len(head) < HEADER_SIZE:
                raise NotAKvorumWALError(seg_path, f"it holds only {len(head)} bytes")
            length, record_type, crc = HEADER.unpack(head)
            if record_type != RecordType.METADATA or length > 1 << 20:
                raise NotAKvorumWALError(seg_path, "it does not start with a metadata record")
            payload = f.read(length)
    except OSError as exc:
        raise WALError(f"cannot read {seg_path}: {exc.strerror}") from exc
    if len(payload) != length or crc_of(head[:8], payload) != crc:
        raise NotAKvorumWALError(seg_path, "its first record fails its CRC")
    try:
        return WALMetadata.decode(payload)
    except ValueError as exc:
        raise NotAKvorumWALError(seg_path, str(exc)) from exc


def snapshot_markers(wal_dir: str | os.PathLike[str]) -> list[tuple[int, int]]:
    """Every snapshot marker ``(term, index)`` in the WAL that its hard state has committed.

    Read-only (no repair, no lock). A member picks the newest snapshot file that appears
    here: a file without a marker was saved just before a crash and is not trusted.
    """
    path = Path(wal_dir)
    names = checked_segments(path)
    markers: list[tuple[int, int]] = []
    hard_state = EMPTY_HARD_STATE
    for i, name in enumerate(names):
        seg_path = path / name.filename
        scan = scan_segment(seg_path, read_file(seg_path), is_last=i == len(names) - 1)
        for offset, record_type, payload in scan.records:
            try:
                if record_type == RecordType.SNAPSHOT:
                    markers.append(decode_snapshot_marker(payload))
                elif record_type == RecordType.HARD_STATE:
                    hard_state = decode_hard_state(payload)
            except ValueError as exc:
                raise WALCorruptError(seg_path, offset, str(exc)) from exc
    return [m for m in markers if m[1] <= hard_state.commit]


def lock_dir(path: Path) -> int:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        raise WALError(f"the WAL in {path} is in use by another process") from None
    return fd


def checked_segments(path: Path) -> list[SegmentName]:
    try:
        names = list_segments(path)
    except OSError as exc:
        raise WALError(f"cannot list WAL directory {path}: {exc.strerror}") from exc
    if not names:
        raise WALError(f"no WAL segments in {path}")
    for before, after in itertools.pairwise(names):
        if after.seq != before.seq + 1:
            raise WALError(
                f"WAL segments in {path} skip from {before.filename} to {after.filename}: "
                "a segment is missing"
            )
    return names


def segment_head(metadata: WALMetadata, name: SegmentName, hard_state: HardState) -> bytes:
    parts = [
        frame(RecordType.METADATA, metadata.encode()),
        frame(RecordType.SEGMENT, encode_segment_info(name.seq, name.first_index)),
    ]
    if not hard_state.is_empty():
        parts.append(frame(RecordType.HARD_STATE, encode_hard_state(hard_state)))
    return b"".join(parts)


def head_end(scan: SegmentScan) -> int:
    """Offset just past a scanned segment's head: metadata, segment, and hard state if
    the segment was started with one."""
    records = scan.records
    head = 3 if len(records) > 2 and records[2][1] == RecordType.HARD_STATE else 2
    if len(records) <= head:
        return scan.end
    return records[head][0]


def create_segment(wal_dir: Path, name: SegmentName, head: bytes, size_bytes: int) -> int:
    """Write a segment under a temporary name, then rename it into place.

    A segment therefore appears with its head records already durable: the last
    segment never lacks its metadata, whatever the moment of a crash.
    """
    final = wal_dir / name.filename
    temp = wal_dir / (name.filename + TEMP_SUFFIX)
    flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC
    fd = os.open(temp, flags, FILE_MODE)
    try:
        preallocate(fd, max(size_bytes, len(head)))
        written = 0
        while written < len(head):
            written += os.pwrite(fd, head[written:], written)
        os.fdatasync(fd)
        os.rename(temp, final)
        fsync_dir(wal_dir)
    except BaseException:
        os.close(fd)
        with contextlib.suppress(OSError):
            os.unlink(temp)
        raise
    return fd


def remove_temp_files(path: Path) -> None:
    for filename in os.listdir(path):
        if filename.endswith(".wal" + TEMP_SUFFIX):
            logger.info("WAL: removing %s left by an interrupted segment switch", path / filename)
            os.unlink(path / filename)


def read_file(path: Path) -> bytes:
    try:
        with open(path, "rb") as f:
            return f.read()
    except OSError as exc:
        raise WALError(f"cannot read {path}: {exc.strerror}") from exc


def check_head(path: Path, name: SegmentName, scan: SegmentScan) -> WALMetadata:
    """The segment's metadata, after checking its two head records."""
    records = scan.records
    if not records or records[0][0] != 0 or records[0][1] != RecordType.METADATA:
        raise NotAKvorumWALError(path, "it does not start with a kvorum metadata record")
    try:
        metadata = WALMetadata.decode(records[0][2])
    except ValueError as exc:
        raise NotAKvorumWALError(path, str(exc)) from exc
    if len(records) < 2 or records[1][1] != RecordType.SEGMENT:
        offset = records[1][0] if len(records) > 1 else scan.end
        raise WALCorruptError(path, offset, "the segment record does not follow the metadata")
    try:
        seq, first_index = decode_segment_info(records[1][2])
    except ValueError as exc:
        raise WALCorruptError(path, records[1][0], str(exc)) from exc
    if (seq, first_index) != (name.seq, name.first_index):
        raise WALCorruptError(
            path,
            records[1][0],
            f"the file says it is segment {seq} starting at index {first_index}; "
            "its name says otherwise (renamed or copied?)",
        )
    return metadata


def repair_torn_tail(path: Path, scan: SegmentScan) -> None:
    torn = scan.torn
    assert torn is not None
    logger.warning(
        "WAL: %s: discarding an unfinished record at byte offset %d (%d bytes; %s); it was "
        "never fsync'd, so nothing acknowledged is lost",
        path,
        torn.offset,
        torn.end - torn.offset,
        torn.reason,
    )
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CLOEXEC)
        try:
            # Zero rather than truncate: the preallocation stays, and a later write
            # that stops short can never leave these old bytes looking like records.
            position = torn.offset
            while position < torn.end:
                chunk = _ZERO_CHUNK[: min(len(_ZERO_CHUNK), torn.end - position)]
                position += os.pwrite(fd, chunk, position)
            os.fdatasync(fd)
        finally:
            os.close(fd)
    except OSError as exc:
        raise WALError(f"cannot repair the torn tail of {path}: {exc.strerror}") from exc
