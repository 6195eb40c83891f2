"""What open does with damaged files: repair a torn tail, refuse everything else."""

from __future__ import annotations

import logging
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest

from kvorum.raft.types import Entry, HardState
from kvorum.wal import (
    WAL,
    NotAKvorumWALError,
    SegmentName,
    WALCorruptError,
    WALError,
    snapshot_markers,
)
from kvorum.wal import WALMetadata as Meta
from kvorum.wal._scan import scan_segment

Entries = Callable[..., list[Entry]]
Reader = Callable[..., tuple[Meta, HardState, list[Entry]]]
SEGMENT = 4096  # room for the test log in one preallocated segment


def _record_offsets(path: Path) -> list[int]:
    """Start of each record, then the end of the log."""
    scan = scan_segment(path, path.read_bytes(), is_last=True)
    assert scan.torn is None
    return [offset for offset, _, _ in scan.records] + [scan.end]


def _last_payload_end(path: Path) -> int:
    offset, _, payload = scan_segment(path, path.read_bytes(), is_last=True).records[-1]
    return offset + 12 + len(payload)


def _write_log(wal_dir: Path, metadata: Meta, make_entries: Entries) -> Path:
    """Nine one-entry batches, each with its hard state: 20 records after the head."""
    with WAL.create(wal_dir, metadata, segment_size_bytes=SEGMENT) as wal:
        for i in range(1, 10):
            wal.save(HardState(1, 1, i - 1), make_entries(i, i))
        wal.save(None, [Entry(1, 10, data=b"last record" * 3)])
        (path,) = wal.segment_paths
    return path


def _flip_bit(path: Path, offset: int, bit: int = 0) -> None:
    with open(path, "r+b") as f:
        f.seek(offset)
        byte = f.read(1)[0]
        f.seek(offset)
        f.write(bytes([byte ^ (1 << bit)]))


@pytest.mark.parametrize("variant", ["zeroed", "truncated", "garbage"])
def test_torn_last_record_of_every_length_is_truncated(
    tmp_path: Path,
    metadata: Meta,
    make_entries: Entries,
    read_wal: Reader,
    variant: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """zeroed: preallocated space after the cut; truncated: the file ends at the cut;
    garbage: the unfinished part holds bytes that are neither zero nor the record."""
    pristine = _write_log(tmp_path / "pristine", metadata, make_entries)
    offsets = _record_offsets(pristine)
    last_start, last_end = offsets[-2], _last_payload_end(pristine)
    assert last_end - last_start > 40
    expected = make_entries(1, 9)
    for cut in range(last_start + 1, last_end):  # every length short of a whole payload
        wal_dir = tmp_path / f"cut-{cut}"
        shutil.copytree(pristine.parent, wal_dir)
        path = wal_dir / pristine.name
        raw = bytearray(path.read_bytes())
        if variant == "zeroed":
            raw[cut:] = bytes(len(raw) - cut)
        elif variant == "truncated":
            del raw[cut:]
        else:
            raw[cut:last_end] = b"\xa5" * (last_end - cut)
        path.write_bytes(bytes(raw))
        caplog.clear()
        with caplog.at_level(logging.WARNING, logger="kvorum.wal"):
            _, hard_state, entries = read_wal(wal_dir)
        assert entries == expected, f"cut at {cut}"
        assert hard_state == HardState(1, 1, 8)
        assert f"{path}: discarding an unfinished record at byte offset {last_start}" in caplog.text
        # The repaired log takes new writes and reads back clean, with no warning.
        with WAL.open(wal_dir).wal as wal:
            wal.save(HardState(2, 1, 9), [Entry(2, 10, data=b"again")])
        caplog.clear()
        with caplog.at_level(logging.WARNING, logger="kvorum.wal"):
            assert read_wal(wal_dir)[2] == [*expected, Entry(2, 10, data=b"again")]
        assert caplog.text == ""


def test_torn_padding_after_a_complete_record_keeps_the_record(
    tmp_path: Path, metadata: Meta, make_entries: Entries, read_wal: Reader
) -> None:
    path = _write_log(tmp_path / "wal", metadata, make_entries)
    payload_end = _last_payload_end(path)
    assert payload_end % 8 != 0
    path.write_bytes(
        path.read_bytes()[:payload_end]
    )  # the file ends inside the last record's padding
    assert read_wal(path.parent)[2][-1] == Entry(1, 10, data=b"last record" * 3)
    with WAL.open(path.parent).wal as wal:
        wal.save(None, [Entry(1, 11)])
    assert [e.index for e in read_wal(path.parent)[2]] == list(range(1, 12))


@pytest.mark.parametrize("where", ["length", "type", "crc", "payload", "payload end"])
def test_bit_flip_in_an_earlier_record_is_refused_with_file_and_offset(
    tmp_path: Path, metadata: Meta, make_entries: Entries, where: str
) -> None:
    path = _write_log(tmp_path / "wal", metadata, make_entries)
    records = scan_segment(path, path.read_bytes(), is_last=True).records
    victim, _, victim_payload = records[5]  # an entry record well before the end
    position = {
        "length": victim,
        "type": victim + 4,
        "crc": victim + 9,
        "payload": victim + 20,
        "payload end": victim + 12 + len(victim_payload) - 1,
    }[where]
    for bit in (0, 7):
        _flip_bit(path, position, bit)
        with pytest.raises(WALCorruptError) as caught:
            WAL.open(path.parent)
        assert caught.value.path == path
        assert caught.value.offset == victim
        assert f"{path} at byte offset {victim}" in str(caught.value)
        _flip_bit(path, position, bit)  # restore
    WAL.open(path.parent).wal.close()


def test_bad_last_record_of_an_earlier_segment_is_refused(
    tmp_path: Path, metadata: Meta, make_entries: Entries
) -> None:
    wal_dir = tmp_path / "wal"
    with WAL.create(wal_dir, metadata, segment_size_bytes=1024) as wal:
        for i in range(1, 40):
            wal.save(HardState(1, 1, i), make_entries(i, i))
        first, second = wal.segment_paths[:2]
    offsets = _record_offsets(first)
    _flip_bit(first, offsets[-2] + 14)
    with pytest.raises(
        WALCorruptError, match=f"{first} at byte offset {offsets[-2]}.*not the last"
    ):
        WAL.open(wal_dir)
    _flip_bit(first, offsets[-2] + 14)
    # A sealed segment cut short loses its last record: that too is corruption.
    raw = first.read_bytes()
    first.write_bytes(raw[: offsets[-2] + 20])
    with pytest.raises(WALCorruptError, match=f"{first} at byte offset {offsets[-2]}"):
        WAL.open(wal_dir)
    first.write_bytes(raw)
    second.unlink()
    with pytest.raises(WALError, match="a segment is missing"):
        WAL.open(wal_dir)


def test_zeroed_header_with_records_after_it_is_refused(
    tmp_path: Path, metadata: Meta, make_entries: Entries
) -> None:
    """Zeros mean end-of-log only if nothing valid follows; otherwise data would vanish."""
    path = _write_log(tmp_path / "wal", metadata, make_entries)
    offsets = _record_offsets(path)
    raw = bytearray(path.read_bytes())
    raw[offsets[4] : offsets[4] + 12] = bytes(12)
    path.write_bytes(bytes(raw))
    with pytest.raises(WALCorruptError, match=f"offset {offsets[4]}.*valid record follows"):
        WAL.open(path.parent)


def test_renamed_segment_is_refused(tmp_path: Path, metadata: Meta, make_entries: Entries) -> None:
    wal_dir = tmp_path / "wal"
    with WAL.create(wal_dir, metadata, segment_size_bytes=1024) as wal:
        wal.save(HardState(1, 1, 1), make_entries(1, 30))
        wal.save(HardState(1, 1, 1), make_entries(31, 40))
        last = wal.segment_paths[-1]
    last.rename(wal_dir / SegmentName(1, 99).filename)
    with pytest.raises(WALCorruptError, match="its name says otherwise"):
        WAL.open(wal_dir)


def test_foreign_segment_is_not_repaired(tmp_path: Path) -> None:
    """A file that is not kvorum's must be refused, never 'repaired' as a torn tail."""
    wal_dir = tmp_path / "wal"
    wal_dir.mkdir()
    path = wal_dir / SegmentName(0, 0).filename
    etcd_like = bytes.fromhex("0400000000000084") + bytes.fromhex("08041000") + b"\0" * 100
    path.write_bytes(etcd_like)
    with pytest.raises(NotAKvorumWALError, match="does not start with a kvorum metadata record"):
        WAL.open(wal_dir)
    assert path.read_bytes() == etcd_like


def test_newer_format_version_is_refused(tmp_path: Path, metadata: Meta) -> None:
    wal_dir = tmp_path / "wal"
    WAL.create(wal_dir, metadata).close()
    path = next(wal_dir.iterdir())
    raw = bytearray(path.read_bytes())
    raw[12 + 8] = 2  # format version, just after the magic
    # Re-seal the CRC so only the version is "wrong".
    from kvorum.wal._record import HEADER, PREFIX, crc_of

    length, kind, _ = HEADER.unpack_from(raw, 0)
    crc = crc_of(PREFIX.pack(length, kind), bytes(raw[12 : 12 + length]))
    raw[0:12] = HEADER.pack(length, kind, crc)
    path.write_bytes(bytes(raw))
    with pytest.raises(NotAKvorumWALError, match="written by a newer kvorum"):
        WAL.open(wal_dir)


def test_snapshot_markers_reads_past_a_torn_tail_without_repairing_it(
    tmp_path: Path, metadata: Meta, make_entries: Entries
) -> None:
    wal_dir = tmp_path / "wal"
    with WAL.create(wal_dir, metadata, segment_size_bytes=SEGMENT) as wal:
        wal.save(HardState(1, 1, 5), make_entries(1, 5))
        wal.save_snapshot_marker(1, 4)
        wal.save(HardState(1, 1, 6), make_entries(6, 6))
        (path,) = wal.segment_paths
    torn_at = _last_payload_end(path) - 3
    raw = path.read_bytes()
    damaged = raw[:torn_at] + bytes(len(raw) - torn_at)
    path.write_bytes(damaged)
    assert snapshot_markers(wal_dir) == [(1, 4)]
    assert path.read_bytes() == damaged  # read-only: the open that follows repairs
