"""The WAL against a failing or slow disk, and its asyncio face."""

from __future__ import annotations

import asyncio
import errno
import logging
import os
import re
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from kvorum.raft.types import Entry, HardState
from kvorum.wal import WAL, AsyncWAL, WALError, WALMetadata

Entries = Callable[..., list[Entry]]
Reader = Callable[..., tuple[WALMetadata, HardState, list[Entry]]]


def _enospc(*_: object) -> int:
    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


def test_enospc_mid_write_leaves_the_log_readable_to_the_last_fsync(
    wal_dir: Path,
    metadata: WALMetadata,
    make_entries: Entries,
    read_wal: Reader,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    wal = WAL.create(wal_dir, metadata, segment_size_bytes=1 << 16)
    wal.save(HardState(1, 1, 3), make_entries(1, 3))
    real_pwrite = os.pwrite
    calls: list[int] = []

    def half_then_full(fd: int, data: bytes, offset: int) -> int:
        # The first call lands half the batch (a short write), the next finds the disk
        # full; later calls (the WAL zeroing what landed) overwrite allocated blocks.
        calls.append(len(data))
        if len(calls) == 1:
            return real_pwrite(fd, bytes(data)[: len(data) // 2], offset)
        if len(calls) == 2:
            return _enospc()
        return real_pwrite(fd, data, offset)

    monkeypatch.setattr(os, "pwrite", half_then_full)
    with pytest.raises(
        WALError, match=f"^no space left on device writing {re.escape(str(wal.segment_paths[0]))}$"
    ):
        wal.save(HardState(1, 1, 3), make_entries(4, 40))
    monkeypatch.setattr(os, "pwrite", real_pwrite)
    with pytest.raises(WALError, match="unusable after an earlier error: no space left"):
        wal.save(None, make_entries(4, 4))
    wal.close()
    _, hard_state, entries = read_wal(wal_dir)  # the half batch is a torn tail
    assert (hard_state, entries) == (HardState(1, 1, 3), make_entries(1, 3))


def test_enospc_from_fdatasync_is_a_clear_error(
    wal_dir: Path,
    metadata: WALMetadata,
    make_entries: Entries,
    read_wal: Reader,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    with WAL.create(wal_dir, metadata) as wal:
        wal.save(None, make_entries(1, 2))
        monkeypatch.setattr(os, "fdatasync", _enospc)
        with pytest.raises(WALError, match=r"no space left on device writing .*0000\.wal"):
            wal.save(None, make_entries(3, 4))
        monkeypatch.undo()
    assert read_wal(wal_dir)[2][:2] == make_entries(1, 2)


def test_enospc_creating_a_segment_keeps_the_old_one_intact(
    wal_dir: Path,
    metadata: WALMetadata,
    make_entries: Entries,
    read_wal: Reader,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    wal = WAL.create(wal_dir, metadata, segment_size_bytes=2048)
    wal.save(HardState(1, 1, 20), make_entries(1, 20))
    monkeypatch.setattr(os, "posix_fallocate", _enospc)
    with pytest.raises(
        WALError, match=r"no space left on device writing .*0001-0000000000000015\.wal"
    ):
        wal.save(HardState(1, 1, 20), make_entries(21, 40))
    monkeypatch.undo()
    wal.close()
    assert sorted(p.name for p in wal_dir.iterdir()) == ["0000000000000000-0000000000000000.wal"]
    assert read_wal(wal_dir)[2] == make_entries(1, 20)


@pytest.fixture
def tiny_tmpfs(tmp_path: Path) -> Iterator[Path]:
    """A 256 KiB tmpfs, where the disk really fills up; skipped where mount is refused."""
    mount_point = tmp_path / "tmpfs"
    mount_point.mkdir()
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=256k", "tmpfs", str(mount_point)],
        capture_output=True,
        check=False,
    )
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs: {done.stderr.decode().strip()}")
    try:
        yield mount_point
    finally:
        subprocess.run(["umount", str(mount_point)], check=False)


def test_really_full_disk(tiny_tmpfs: Path, metadata: WALMetadata, read_wal: Reader) -> None:
    wal_dir = tiny_tmpfs / "wal"
    wal = WAL.create(wal_dir, metadata, segment_size_bytes=32 * 1024)
    acked = 0
    with pytest.raises(
        WALError, match=f"no space left on device writing {re.escape(str(wal_dir))}/"
    ):
        for index in range(1, 100_000):
            wal.save(HardState(1, 1, acked), [Entry(1, index, data=os.urandom(1000))])
            acked = index
    wal.close()
    assert acked > 100
    _, _, entries = read_wal(wal_dir)
    assert [e.index for e in entries][:acked] == list(range(1, acked + 1))


def test_slow_fsync_is_logged_with_its_duration(
    wal_dir: Path,
    metadata: WALMetadata,
    make_entries: Entries,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    observed: list[float] = []
    wal = WAL.create(wal_dir, metadata, slow_fsync_s=0.05, fsync_observer=observed.append)
    with wal, caplog.at_level(logging.WARNING, logger="kvorum.wal"):
        wal.save(None, make_entries(1, 1))
        assert "slow fdatasync" not in caplog.text
        real = os.fdatasync

        def slow_fdatasync(fd: int) -> None:
            time.sleep(0.08)
            real(fd)

        monkeypatch.setattr(os, "fdatasync", slow_fdatasync)
        wal.save(None, make_entries(2, 2))
    assert len(observed) == 2 and observed[1] >= 0.08
    (message,) = [r.getMessage() for r in caplog.records if "slow" in r.getMessage()]
    assert f"slow fdatasync of {wal.segment_paths[0]} took 0.0" in message


def test_async_save_keeps_the_event_loop_running(
    wal_dir: Path,
    metadata: WALMetadata,
    make_entries: Entries,
    read_wal: Reader,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    real = os.fdatasync
    sync_threads: list[str] = []

    def slow_fdatasync(fd: int) -> None:
        sync_threads.append(threading.current_thread().name)
        time.sleep(0.2)
        real(fd)

    async def scenario() -> int:
        wal = AsyncWAL(WAL.create(wal_dir, metadata))
        monkeypatch.setattr(os, "fdatasync", slow_fdatasync)
        ticks = 0

        async def ticker() -> None:
            nonlocal ticks
            while True:
                await asyncio.sleep(0.01)
                ticks += 1

        task = asyncio.create_task(ticker())
        await wal.save(HardState(1, 1, 0), make_entries(1, 10))
        await asyncio.gather(*(wal.save(None, make_entries(i, i)) for i in range(11, 13)))
        task.cancel()
        monkeypatch.undo()
        await wal.save_snapshot_marker(1, 5)
        assert await wal.release_to(5) == []
        await wal.close()
        return ticks

    ticks = asyncio.run(scenario())
    assert ticks >= 30  # the loop ran on through 0.6 s of fsync
    assert sync_threads and all(name.startswith("kvorum-wal") for name in sync_threads)
    assert read_wal(wal_dir, (1, 5))[2] == make_entries(6, 12)
