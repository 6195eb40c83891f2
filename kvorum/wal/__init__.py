"""Write-ahead log: the durable raft log (entries, hard state, snapshot markers).

``_wal`` has the WAL itself and the layout, ``_record`` the on-disk record format,
``_scan`` how a torn tail is told apart from corruption, ``_replay`` the replay
invariant, ``_segments`` segment creation and the read-only queries, ``_async`` the
asyncio face.
"""

from kvorum.wal._async import AsyncWAL
from kvorum.wal._errors import NotAKvorumWALError, WALCorruptError, WALError
from kvorum.wal._files import SegmentName
from kvorum.wal._record import FORMAT_VERSION, WALMetadata
from kvorum.wal._segments import read_metadata, snapshot_markers
from kvorum.wal._wal import (
    MAX_WALS,
    SEGMENT_SIZE_BYTES,
    SLOW_FSYNC_S,
    WAL,
    FsyncObserver,
    WALContents,
)

__all__ = [
    "FORMAT_VERSION",
    "MAX_WALS",
    "SEGMENT_SIZE_BYTES",
    "SLOW_FSYNC_S",
    "WAL",
    "AsyncWAL",
    "FsyncObserver",
    "NotAKvorumWALError",
    "SegmentName",
    "WALContents",
    "WALCorruptError",
    "WALError",
    "WALMetadata",
    "read_metadata",
    "snapshot_markers",
]
