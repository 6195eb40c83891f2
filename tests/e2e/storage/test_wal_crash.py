"""kill -9 a real WAL writer at random moments; every acknowledged entry must survive.

Rounds: 5 by default, 50 with KVORUM_LONG=1; the seed is printed on failure
(KVORUM_SEED=n replays one).
"""

from __future__ import annotations

import hashlib
import os
import random
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from kvorum.raft.types import Entry
from kvorum.wal import WAL, snapshot_markers
from kvorum.wal._record import HEADER_SIZE, RecordType
from kvorum.wal._scan import scan_segment

WRITER = Path(__file__).with_name("wal_writer.py")
SEGMENT_BYTES = 256 * 1024  # small, so kills land during segment switches and purges
ROUNDS = 50 if os.environ.get("KVORUM_LONG") == "1" else 5
SEED = int(os.environ.get("KVORUM_SEED", "20261121"))


def _payload(index: int) -> bytes:
    """Must match wal_writer.payload."""
    digest = hashlib.blake2b(index.to_bytes(8, "little"), digest_size=16).digest()
    # Every 50th entry is 1 MiB: writes that long are where a kill can tear a record.
    return digest * (65536 if index % 50 == 0 else index % 40 + 1)


class _Writer:
    """The writer process and the acknowledgements it printed, read on a thread."""

    def __init__(self, wal_dir: Path, seed: int, *, chunked: bool = False) -> None:
        mode = ["chunked"] if chunked else []
        self.proc = subprocess.Popen(
            [sys.executable, str(WRITER), str(wal_dir), str(seed), str(SEGMENT_BYTES), *mode],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        self.acked = 0
        self.started = threading.Event()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            word, _, number = line.partition(" ")
            if word == "ack":
                self.acked = int(number)
            elif word == "start":
                self.started.set()

    def wait_started(self) -> None:
        """Until the writer has opened its WAL; fails with its stderr if it died."""
        deadline = time.monotonic() + 20
        while not self.started.wait(timeout=0.05):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                _, stderr = self.kill()
                pytest.fail(f"the writer did not start (exit {self.proc.returncode}):\n{stderr}")

    def kill(self) -> tuple[int, str]:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=10)
        self._reader.join(timeout=10)
        assert self.proc.stderr is not None
        return self.acked, self.proc.stderr.read()


def _check_log(wal_dir: Path, acked: int, context: str) -> list[Entry]:
    """Reopen as the member would: from the newest committed snapshot marker."""
    markers = snapshot_markers(wal_dir)
    snap = max(markers, key=lambda m: m[1]) if markers else (0, 0)
    contents = WAL.open(wal_dir, snap, segment_size_bytes=SEGMENT_BYTES, max_wals=3)
    contents.wal.close()
    entries = contents.entries
    indexes = [e.index for e in entries]
    assert indexes == list(range(snap[1] + 1, snap[1] + 1 + len(entries))), context
    assert snap[1] + len(entries) >= acked, f"{context}: acknowledged entry {acked} lost"
    for entry in entries:
        assert entry.data == _payload(entry.index), f"{context}: entry {entry.index} is wrong"
    assert contents.hard_state.commit >= acked, context
    return entries


def test_kill_9_never_loses_an_acknowledged_entry(tmp_path: Path) -> None:
    rng = random.Random(SEED)
    wal_dir = tmp_path / "wal"
    acked_ever = 0
    for round_no in range(ROUNDS):
        context = f"seed {SEED}, round {round_no}"
        writer = _Writer(wal_dir, rng.randrange(1 << 30), chunked=round_no % 2 == 1)
        # Kill at a random moment: sometimes during start-up and repair, mostly mid-write.
        if rng.random() < 0.8:
            writer.wait_started()
        time.sleep(rng.uniform(0.0, 0.4))
        acked, stderr = writer.kill()
        assert "Traceback" not in stderr, f"{context}: writer failed:\n{stderr}"
        acked_ever = max(acked_ever, acked)
        if not wal_dir.exists():
            continue  # killed before the WAL was created
        _check_log(wal_dir, acked_ever, context)
    assert acked_ever > 0, "the writer never acknowledged anything"


def test_truncated_last_segment_recovers(tmp_path: Path) -> None:
    """A file system without preallocation can lose the end of the file in a crash: the
    log then ends at the last whole record, and takes writes again."""
    rng = random.Random(SEED + 1)
    wal_dir = tmp_path / "wal"
    for attempt in range(10):  # until the last segment holds a few entries to cut into
        writer = _Writer(wal_dir, attempt)
        writer.wait_started()
        time.sleep(0.2)
        writer.kill()
        before = _check_log(wal_dir, 0, "before truncation")
        last = sorted(wal_dir.glob("*.wal"))[-1]
        raw = last.read_bytes()
        records = scan_segment(last, raw, is_last=True).records
        # A crash loses only what was never fsync'd. The segment's snapshot markers were, and
        # older segments were purged on their strength (so the log cannot be read without
        # them): the cut falls after the newest one.
        floor = max((at for at, kind, _ in records if kind == RecordType.SNAPSHOT), default=0)
        entries = [
            (at, at + HEADER_SIZE + len(payload))  # where the entry starts and ends
            for at, kind, payload in records
            if kind == RecordType.ENTRY and at > floor
        ]
        if len(entries) >= 2:
            break
    else:
        pytest.fail("the writer never left two entries past its last marker in its last segment")
    cut = rng.randrange(entries[0][0] + 1, len(raw.rstrip(b"\0")))
    os.truncate(last, cut)
    what = f"after truncating {last.name} to {cut} bytes"
    after = _check_log(wal_dir, 0, what)
    if cut < entries[-1][1]:
        # The last entry was cut into.
        assert not after or after[-1].index < before[-1].index, what
    else:
        # Only what the writer put after its last entry (a state record, the last entry's
        # padding) was cut: every entry is still there.
        assert after and after[-1].index == before[-1].index, what
    by_index = {e.index: e for e in before}
    assert all(by_index.get(e.index, e) == e for e in after)
    writer = _Writer(wal_dir, 99)  # and the writer carries on from there
    writer.wait_started()
    time.sleep(0.2)
    acked, stderr = writer.kill()
    assert "Traceback" not in stderr, stderr
    _check_log(wal_dir, acked, "after restart")


@pytest.mark.skipif(os.environ.get("KVORUM_LONG") != "1", reason="KVORUM_LONG=1 only")
def test_kill_9_long_run_with_a_fresh_seed(tmp_path: Path) -> None:
    """The long run also tries a seed nobody tried before (printed for replay)."""
    seed = random.randrange(1 << 30)
    print(f"KVORUM_SEED={seed}")
    rng = random.Random(seed)
    wal_dir = tmp_path / "wal"
    acked_ever = 0
    for round_no in range(ROUNDS):
        writer = _Writer(wal_dir, rng.randrange(1 << 30), chunked=rng.random() < 0.5)
        time.sleep(rng.uniform(0.05, 0.6))
        acked, stderr = writer.kill()
        assert "Traceback" not in stderr, f"seed {seed} round {round_no}:\n{stderr}"
        acked_ever = max(acked_ever, acked)
        if wal_dir.exists():
            _check_log(wal_dir, acked_ever, f"seed {seed}, round {round_no}")
