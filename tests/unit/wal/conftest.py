"""Fixtures for the WAL tests: a small segment size so rollover happens within a test."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from kvorum.raft.types import Entry, EntryType, HardState
from kvorum.wal import WAL, WALMetadata

SMALL_SEGMENT_BYTES = 4 * 1024


def _payload(index: int, term: int) -> bytes:
    """Deterministic data of varying size, so a wrong or stale entry is always visible."""
    return (b"%d/%d:" % (term, index)) * (index % 7 + 1)


_TYPES = {False: EntryType.NORMAL, True: EntryType.CONF_CHANGE}


def _make_entries(first: int, last: int, term: int = 1) -> list[Entry]:
    return [Entry(term, i, _TYPES[i % 11 == 0], _payload(i, term)) for i in range(first, last + 1)]


@pytest.fixture
def wal_dir(tmp_path: Path) -> Path:
    return tmp_path / "member" / "wal"


@pytest.fixture
def metadata() -> WALMetadata:
    return WALMetadata(member_id=0x8E9E05C52164694D, cluster_id=0xCDF818194E3A8C32, extra=b"m1")


@pytest.fixture
def make_entries() -> Callable[..., list[Entry]]:
    """``make_entries(first, last, term=1)``: entries first..last inclusive."""
    return _make_entries


@pytest.fixture
def segment_bytes() -> int:
    return SMALL_SEGMENT_BYTES


def _read_wal(
    wal_dir: Path, from_snapshot: tuple[int, int] = (0, 0), segment_size_bytes: int = 1 << 20
) -> tuple[WALMetadata, HardState, list[Entry]]:
    contents = WAL.open(wal_dir, from_snapshot, segment_size_bytes=segment_size_bytes)
    contents.wal.close()
    return contents.metadata, contents.hard_state, contents.entries


@pytest.fixture
def read_wal() -> Callable[..., tuple[WALMetadata, HardState, list[Entry]]]:
    """``read_wal(dir, from_snapshot=(0, 0))``: open, replay and close again."""
    return _read_wal
