"""WAL throughput: records/s and fsyncs/s at several batch sizes, beside the disk's raw
fdatasync rate measured in the same directory.

    .venv/bin/python bench/wal.py [--dir DIR] [--seconds S] [--entry-bytes N]

Each WAL case appends batches of N-byte entries plus a hard state, one fdatasync per
batch (group commit). "raw" writes 4 KiB and calls fdatasync in a loop: the ceiling any
WAL on this disk can reach in fsyncs/s. The cases run interleaved in short slices, so
a shared or bursty disk slows them all alike and the ratios stay meaningful.
"""

from __future__ import annotations

import argparse
import os
import shlex
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from kvorum.raft.types import Entry, HardState
from kvorum.wal import WAL, WALMetadata

BATCH_SIZES = (1, 10, 100)
SLICE_S = 0.25


class _Raw:
    """4 KiB pwrite + fdatasync over a file filled beforehand (no allocation in the loop,
    as in the WAL's preallocated segments)."""

    def __init__(self, directory: Path) -> None:
        self.path = directory / "raw-fdatasync.bin"
        self.fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        os.pwrite(self.fd, os.urandom(1024 * 4096), 0)
        os.fsync(self.fd)
        self.block = os.urandom(4096)
        self.count = 0

    def step(self) -> tuple[int, int]:
        os.pwrite(self.fd, self.block, (self.count % 1024) * 4096)
        os.fdatasync(self.fd)
        self.count += 1
        return 0, 1

    def close(self) -> None:
        os.close(self.fd)


class _Appender:
    def __init__(self, directory: Path, batch: int, entry_bytes: int, sync: bool) -> None:
        self.wal = WAL.create(directory / f"wal-{batch}-{sync}", WALMetadata(1, 1))
        self.batch = batch
        self.sync = sync
        self.data = os.urandom(entry_bytes)
        self.index = 0

    def step(self) -> tuple[int, int]:
        first = self.index + 1
        self.index += self.batch
        entries = [Entry(1, i, data=self.data) for i in range(first, self.index + 1)]
        self.wal.save(HardState(1, 1, self.index), entries, must_sync=self.sync)
        return self.batch, int(self.sync)

    def close(self) -> None:
        self.wal.close()


def _run_slice(step: Callable[[], tuple[int, int]], totals: list[float]) -> None:
    started = time.perf_counter()
    deadline = started + SLICE_S
    records = fsyncs = 0
    while time.perf_counter() < deadline:
        r, f = step()
        records += r
        fsyncs += f
    totals[0] += records
    totals[1] += fsyncs
    totals[2] += time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--dir", type=Path, default=None, help="directory on the disk to test")
    parser.add_argument("--seconds", type=float, default=3.0, help="time given to each case")
    parser.add_argument("--entry-bytes", type=int, default=200)
    args = parser.parse_args()
    base = args.dir or Path(tempfile.gettempdir())
    base.mkdir(parents=True, exist_ok=True)
    directory = Path(tempfile.mkdtemp(prefix="kvorum-wal-bench-", dir=base))
    cases: dict[str, _Raw | _Appender] = {}
    try:
        cases["raw 4 KiB + fdatasync"] = _Raw(directory)
        for batch in BATCH_SIZES:
            cases[f"WAL batch {batch}"] = _Appender(directory, batch, args.entry_bytes, True)
        cases["WAL batch 100, no sync"] = _Appender(directory, 100, args.entry_bytes, False)
        totals = {name: [0.0, 0.0, 0.0] for name in cases}
        for _ in range(max(1, round(args.seconds / SLICE_S))):
            for name, case in cases.items():
                _run_slice(case.step, totals[name])
    finally:
        for case in cases.values():
            case.close()
        shutil.rmtree(directory, ignore_errors=True)
    raw_fsyncs_s = totals["raw 4 KiB + fdatasync"][1] / totals["raw 4 KiB + fdatasync"][2]
    print(f"$ {shlex.join([Path(sys.executable).name, *sys.argv])}")
    print(f"directory: {base}  entry: {args.entry_bytes} B  {args.seconds:g} s per case")
    print(f"{'case':<24}{'records/s':>11}{'fsyncs/s':>10}{'fsyncs vs raw':>15}")
    for name, (records, fsyncs, took_s) in totals.items():
        records_s = f"{records / took_s:.0f}" if records else "-"
        fsyncs_s = f"{fsyncs / took_s:.0f}" if fsyncs else "-"
        ratio = f"{fsyncs / took_s / raw_fsyncs_s:.0%}" if fsyncs else "-"
        print(f"{name:<24}{records_s:>11}{fsyncs_s:>10}{ratio:>15}")


if __name__ == "__main__":
    main()
