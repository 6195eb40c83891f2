"""The WAL as a raft log: what goes in comes back, with raft's overwrite rule."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kvorum.raft.types import Entry, EntryType, HardState
from kvorum.wal import WAL, SegmentName, WALError, WALMetadata, read_metadata, snapshot_markers

Entries = Callable[..., list[Entry]]
Reader = Callable[..., tuple[WALMetadata, HardState, list[Entry]]]


def test_round_trip(wal_dir: Path, metadata: WALMetadata, make_entries: Entries) -> None:
    big = Entry(2, 11, EntryType.NORMAL, os.urandom(1 << 20))
    with WAL.create(wal_dir, metadata) as wal:
        wal.save(HardState(1, 7, 0), make_entries(1, 5))
        wal.save(HardState(1, 7, 5), [])  # hard state alone
        wal.save(None, make_entries(6, 10))
        wal.save(HardState(2, 0, 9), [big, Entry(2, 12)])  # empty data
    wal, found_metadata, hard_state, entries = WAL.open(wal_dir)
    with wal:
        assert found_metadata == metadata
        assert hard_state == HardState(2, 0, 9)
        assert entries == [*make_entries(1, 10), big, Entry(2, 12)]
        assert wal.last_index == 12
        assert read_metadata(wal_dir) == metadata


def test_reopened_wal_appends_after_what_it_read(
    read_wal: Reader, wal_dir: Path, metadata: WALMetadata, make_entries: Entries
) -> None:
    with WAL.create(wal_dir, metadata) as wal:
        wal.save(HardState(1, 1, 1), make_entries(1, 3))
    for first in (4, 7):
        wal = WAL.open(wal_dir).wal
        with wal:
            wal.save(HardState(1, 1, first), make_entries(first, first + 2))
    _, hard_state, entries = read_wal(wal_dir)
    assert hard_state == HardState(1, 1, 7)
    assert entries == make_entries(1, 9)


def test_later_entry_replaces_the_suffix_from_its_index(
    read_wal: Reader, wal_dir: Path, metadata: WALMetadata, make_entries: Entries
) -> None:
    """Raft §5.3: a conflicting entry deletes it and all that follow it."""
    with WAL.create(wal_dir, metadata) as wal:
        wal.save(HardState(1, 1, 3), make_entries(1, 10, term=1))
        wal.save(HardState(2, 2, 3), make_entries(6, 8, term=2))
        assert wal.last_index == 8
    _, hard_state, entries = read_wal(wal_dir)
    assert entries == make_entries(1, 5, term=1) + make_entries(6, 8, term=2)
    assert hard_state == HardState(2, 2, 3)


def test_overwrite_reaching_back_into_an_earlier_segment(
    read_wal: Reader,
    wal_dir: Path,
    metadata: WALMetadata,
    make_entries: Entries,
    segment_bytes: int,
) -> None:
    with WAL.create(wal_dir, metadata, segment_size_bytes=segment_bytes) as wal:
        for first in range(1, 300, 5):
            wal.save(HardState(1, 1, 40), make_entries(first, first + 4))
        assert len(wal.segment_paths) >= 3
        wal.save(HardState(2, 1, 40), make_entries(50, 52, term=2))
    _, _, entries = read_wal(wal_dir, segment_size_bytes=segment_bytes)
    assert entries == make_entries(1, 49) + make_entries(50, 52, term=2)


def test_save_refuses_a_gap_and_non_consecutive_entries(
    read_wal: Reader, wal_dir: Path, metadata: WALMetadata, make_entries: Entries
) -> None:
    with WAL.create(wal_dir, metadata) as wal:
        wal.save(None, make_entries(1, 3))
        with pytest.raises(WALError, match="gap after index 3"):
            wal.save(None, make_entries(5, 6))
        with pytest.raises(WALError, match="not consecutive"):
            wal.save(None, [*make_entries(4, 5), *make_entries(7, 7)])
        wal.save(None, make_entries(4, 4))  # still usable: nothing was written
    assert read_wal(wal_dir)[2] == make_entries(1, 4)


def test_segments_roll_over_with_names_seq_and_first_index(
    read_wal: Reader,
    wal_dir: Path,
    metadata: WALMetadata,
    make_entries: Entries,
    segment_bytes: int,
) -> None:
    with WAL.create(wal_dir, metadata, segment_size_bytes=segment_bytes) as wal:
        for first in range(1, 400, 10):
            wal.save(HardState(1, 1, first), make_entries(first, first + 9))
        paths = wal.segment_paths
    names = [SegmentName.parse(p.name) for p in paths]
    assert len(names) > 5
    assert [n.seq for n in names if n] == list(range(len(names)))
    assert names[0] == SegmentName(0, 0)
    # Each segment starts right after the last entry of the one before (10-entry batches).
    assert all(n is not None and (n.first_index - 1) % 10 == 0 for n in names[1:])
    for path in paths[:-1]:  # sealed segments lose their preallocated tail
        assert path.stat().st_size <= segment_bytes
    _, hard_state, entries = read_wal(wal_dir, segment_size_bytes=segment_bytes)
    assert entries == make_entries(1, 400)
    assert hard_state == HardState(1, 1, 391)


def test_each_segment_repeats_metadata_and_hard_state(
    read_wal: Reader,
    wal_dir: Path,
    metadata: WALMetadata,
    make_entries: Entries,
    segment_bytes: int,
) -> None:
    """After older segments are purged, the newest still knows identity and hard state."""
    with WAL.create(wal_dir, metadata, segment_size_bytes=segment_bytes, max_wals=1) as wal:
        wal.save(HardState(3, 2, 1), make_entries(1, 200))
        wal.save(None, make_entries(201, 400))  # forces a new segment, no new hard state
        wal.save_snapshot_marker(1, 300)
        assert len(wal.release_to(300)) == 1
    assert read_metadata(wal_dir) == metadata
    found, hard_state, entries = read_wal(wal_dir, (1, 300))
    assert (found, hard_state) == (metadata, HardState(3, 2, 1))
    assert entries == make_entries(301, 400)


def test_open_from_snapshot_returns_only_later_entries(
    read_wal: Reader, wal_dir: Path, metadata: WALMetadata, make_entries: Entries
) -> None:
    with WAL.create(wal_dir, metadata) as wal:
        wal.save(HardState(1, 1, 10), make_entries(1, 10))
        wal.save_snapshot_marker(1, 8)
        wal.save(HardState(1, 1, 12), make_entries(11, 12))
    _, hard_state, entries = read_wal(wal_dir, (1, 8))
    assert entries == make_entries(9, 12)
    assert hard_state == HardState(1, 1, 12)
    assert snapshot_markers(wal_dir) == [(1, 8)]
    with pytest.raises(WALError, match="no marker for the snapshot at term 1, index 9"):
        WAL.open(wal_dir, (1, 9))
    with pytest.raises(WALError, match="has term 1, not 2"):
        WAL.open(wal_dir, (2, 8))


def test_snapshot_markers_lists_only_committed_ones(
    wal_dir: Path, metadata: WALMetadata, make_entries: Entries
) -> None:
    with WAL.create(wal_dir, metadata) as wal:
        wal.save(HardState(1, 1, 5), make_entries(1, 10))
        wal.save_snapshot_marker(1, 4)
        wal.save_snapshot_marker(1, 9)  # beyond commit 5: not trustworthy (etcd agrees)
    assert snapshot_markers(wal_dir) == [(1, 4)]


def test_installed_snapshot_beyond_the_log(
    read_wal: Reader, wal_dir: Path, metadata: WALMetadata, make_entries: Entries
) -> None:
    """A follower that gets a snapshot from the leader continues its log after it."""
    with WAL.create(wal_dir, metadata) as wal:
        wal.save(HardState(1, 1, 5), make_entries(1, 5))
        wal.save_snapshot_marker(3, 100)
        wal.save(HardState(3, 0, 100), [])
        assert wal.last_index == 100
        wal.save(HardState(3, 0, 101), make_entries(101, 103, term=3))
    _, _, entries = read_wal(wal_dir, (3, 100))
    assert entries == make_entries(101, 103, term=3)
    with pytest.raises(WALError, match="open the WAL from that newer snapshot"):
        WAL.open(wal_dir)


def test_release_to_keeps_max_wals_and_what_the_snapshot_needs(
    read_wal: Reader,
    wal_dir: Path,
    metadata: WALMetadata,
    make_entries: Entries,
    segment_bytes: int,
) -> None:
    with WAL.create(wal_dir, metadata, segment_size_bytes=segment_bytes, max_wals=2) as wal:
        for first in range(1, 600, 20):
            wal.save(HardState(1, 1, first + 19), make_entries(first, first + 19))
        paths = wal.segment_paths
        names = [SegmentName.parse(p.name) for p in paths]
        assert len(paths) >= 6
        # A snapshot inside segment 3 makes segments 0..2 unneeded (3 and later stay).
        snap_index = names[3].first_index + 1 if names[3] else 0
        wal.save_snapshot_marker(1, snap_index)
        assert wal.release_to(snap_index) == paths[:3]
        assert wal.segment_paths == paths[3:]
        # Releasing to the last index purges down to max_wals, never the last segment.
        wal.save_snapshot_marker(1, 600)
        assert wal.release_to(600) == paths[3:-2]
        assert [p.exists() for p in paths[-2:]] == [True, True]
    _, _, entries = read_wal(wal_dir, (1, 600))
    assert entries == []
    with pytest.raises(WALError, match="older segments were purged"):
        WAL.open(wal_dir, (1, snap_index))


def test_max_wals_zero_keeps_everything(
    wal_dir: Path, metadata: WALMetadata, make_entries: Entries, segment_bytes: int
) -> None:
    with WAL.create(wal_dir, metadata, segment_size_bytes=segment_bytes, max_wals=0) as wal:
        wal.save(HardState(1, 1, 300), make_entries(1, 300))
        wal.save(HardState(1, 1, 600), make_entries(301, 600))
        wal.save_snapshot_marker(1, 600)
        before = wal.segment_paths
        assert len(before) >= 3
        assert wal.release_to(600) == []
        assert wal.segment_paths == before


def test_a_second_process_cannot_open_a_wal_in_use(wal_dir: Path, metadata: WALMetadata) -> None:
    with WAL.create(wal_dir, metadata), pytest.raises(WALError, match="in use by another"):
        WAL.open(wal_dir)
    WAL.open(wal_dir).wal.close()  # the lock went with close()


def test_create_refuses_an_existing_wal_and_open_a_missing_one(
    tmp_path: Path, wal_dir: Path, metadata: WALMetadata
) -> None:
    WAL.create(wal_dir, metadata).close()
    with pytest.raises(WALError, match="already exists"):
        WAL.create(wal_dir, metadata)
    with pytest.raises(WALError, match="does not exist"):
        WAL.open(tmp_path / "nowhere")
    (tmp_path / "empty").mkdir()
    with pytest.raises(WALError, match="no WAL segments"):
        WAL.open(tmp_path / "empty")


def test_wal_files_and_directory_are_private(wal_dir: Path, metadata: WALMetadata) -> None:
    with WAL.create(wal_dir, metadata) as wal:
        assert wal_dir.stat().st_mode & 0o777 == 0o700
        assert wal.segment_paths[0].stat().st_mode & 0o777 == 0o600


def test_an_unchanged_hard_state_and_no_entries_write_nothing(
    wal_dir: Path, metadata: WALMetadata, monkeypatch: pytest.MonkeyPatch
) -> None:
    with WAL.create(wal_dir, metadata) as wal:
        wal.save(HardState(1, 1, 0), [])
        syncs: list[int] = []
        monkeypatch.setattr(os, "fdatasync", lambda fd: syncs.append(fd))
        wal.save(HardState(1, 1, 0), [])
        wal.save(None, [])
        assert syncs == []
        wal.save(HardState(1, 1, 0), [Entry(1, 1)], must_sync=False)
        assert syncs == []
        wal.save(HardState(1, 1, 1), [])
        assert len(syncs) == 1


def test_leftover_temporary_segment_is_removed(wal_dir: Path, metadata: WALMetadata) -> None:
    WAL.create(wal_dir, metadata).close()
    leftover = wal_dir / (SegmentName(1, 1).filename + ".tmp")
    leftover.write_bytes(b"\0" * 100)
    WAL.open(wal_dir).wal.close()
    assert not leftover.exists()


# A model check: any sequence of appends, overwrites and reopenings reads back as the
# same list a plain Python model holds.
_ops = st.lists(
    st.tuples(
        st.sampled_from(["append", "overwrite", "reopen"]), st.integers(0, 30), st.integers(1, 10)
    ),
    max_size=25,
)


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(ops=_ops)
def test_matches_a_list_model(
    tmp_path: Path, metadata: WALMetadata, ops: list[tuple[str, int, int]]
) -> None:
    """append n: n new entries; overwrite back, n: a new term rewrites from back entries
    before the end; reopen: close, read back, compare."""
    wal_dir = tmp_path / f"model-{os.urandom(6).hex()}"
    model: list[Entry] = []
    term = 1
    wal = WAL.create(wal_dir, metadata, segment_size_bytes=2048)
    try:
        for kind, back, count in ops:
            if kind == "append":
                first = len(model) + 1
                batch = [Entry(term, first + k, data=os.urandom(k * 7)) for k in range(back)]
                if not batch:
                    continue
            elif kind == "overwrite":
                term += 1
                first = max(1, len(model) - back)
                batch = [Entry(term, first + k, data=b"t%d" % term) for k in range(count)]
            else:
                wal.close()
                wal, _, _, read_back = WAL.open(wal_dir, segment_size_bytes=2048)
                assert read_back == model
                continue
            wal.save(HardState(term, 1, 0), batch)
            del model[batch[0].index - 1 :]
            model.extend(batch)
    finally:
        wal.close()
    contents = WAL.open(wal_dir)
    contents.wal.close()
    assert contents.entries == model
