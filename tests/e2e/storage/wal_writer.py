"""A WAL writer for crash tests: appends batches forever, printing "ack N" only after
the save that made entry N durable has returned. Run as a script::

    python wal_writer.py WAL_DIR SEED SEGMENT_BYTES [chunked]

``chunked`` makes every write reach the file 4 KiB at a time with a pause in between,
like a slow device: a kill then usually lands mid-batch and leaves a torn record
(the WAL's own loop over short writes is what runs). Without it, writes to the page
cache are so quick that a kill almost always lands in fdatasync.

It reopens an existing WAL (from its newest snapshot marker), so it can be killed and
restarted on the same directory any number of times. Entry data is a function of the
index (``payload``), so the checker can tell a wrong entry from a right one.
"""

from __future__ import annotations

import hashlib
import os
import random
import sys
import time
from pathlib import Path

from kvorum.raft.types import Entry, HardState
from kvorum.wal import WAL, WALMetadata, snapshot_markers

METADATA = WALMetadata(member_id=0x1234, cluster_id=0x5678)
MAX_BATCH_ENTRIES = 40


def payload(index: int) -> bytes:
    digest = hashlib.blake2b(index.to_bytes(8, "little"), digest_size=16).digest()
    # Every 50th entry is 1 MiB: writes that long are where a kill can tear a record.
    return digest * (65536 if index % 50 == 0 else index % 40 + 1)


def newest_marker(wal_dir: Path) -> tuple[int, int]:
    markers = snapshot_markers(wal_dir)
    return max(markers, key=lambda m: m[1]) if markers else (0, 0)


_real_pwrite = os.pwrite


def chunked_pwrite(fd: int, data: bytes | memoryview, offset: int) -> int:
    time.sleep(0.0002)
    return _real_pwrite(fd, bytes(memoryview(data)[:4096]), offset)


def main() -> None:
    wal_dir, seed, segment_bytes = Path(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
    if sys.argv[4:] == ["chunked"]:
        os.pwrite = chunked_pwrite  # type: ignore[assignment]
    rng = random.Random(seed)
    if wal_dir.exists():
        snap = newest_marker(wal_dir)
        wal, _, hard_state, _ = WAL.open(
            wal_dir, snap, segment_size_bytes=segment_bytes, max_wals=3
        )
    else:
        wal = WAL.create(wal_dir, METADATA, segment_size_bytes=segment_bytes, max_wals=3)
        hard_state = HardState()
    term = hard_state.term + 1  # as if re-elected after each restart
    print(f"start {wal.last_index}", flush=True)
    while True:
        first = wal.last_index + 1
        batch = [
            Entry(term, i, data=payload(i))
            for i in range(first, first + rng.randint(1, MAX_BATCH_ENTRIES))
        ]
        last = batch[-1].index
        wal.save(HardState(term, 1, last), batch)
        print(f"ack {last}", flush=True)
        if rng.random() < 0.05:
            marker = rng.randint(max(1, last - 50), last)
            wal.save_snapshot_marker(term, marker)
            wal.release_to(marker)


if __name__ == "__main__":
    main()
