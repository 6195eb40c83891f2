"""Range permissions: the union of a user's permissions must cover the whole request (etcd)."""

from __future__ import annotations

import itertools

from hypothesis import given
from hypothesis import strategies as st

from kvorum.auth import Permission, PermType, RangePermissions
from kvorum.auth.perms import merge_intervals

R, W, RW = PermType.READ, PermType.WRITE, PermType.READWRITE


def test_single_key_permission_covers_only_that_key() -> None:
    perms = RangePermissions.of([Permission(R, b"k")])
    assert perms.can_read(b"k")
    assert not perms.can_read(b"k0")
    assert not perms.can_read(b"j")
    assert not perms.can_read(b"k", b"l")  # a range starting at k is more than k
    assert perms.can_read(b"k", b"k\0")  # exactly the key, written as a range
    assert not perms.can_write(b"k")


def test_a_permission_on_the_empty_key_covers_nothing() -> None:
    """etcd reads an empty key as past every key: "", "" to "\\0" (all keys from "") and ""
    to "z" grant nothing, and do not widen a real permission beside them."""
    for range_end in (b"", b"\0", b"z"):
        perms = RangePermissions.of([Permission(RW, b"", range_end)])
        for key, end in ((b"", b""), (b"\0", b""), (b"a", b""), (b"a", b"b"), (b"\0", b"\0")):
            assert not perms.can_read(key, end), (range_end, key, end)
            assert not perms.can_write(key, end), (range_end, key, end)
    beside = RangePermissions.of([Permission(R, b"", b"\0"), Permission(R, b"m", b"n")])
    assert beside.can_read(b"m")
    assert not beside.can_read(b"a")
    assert not beside.can_read(b"a", b"n")


def test_range_permission_covers_subranges_and_not_beyond() -> None:
    perms = RangePermissions.of([Permission(W, b"b", b"e")])
    assert perms.can_write(b"b")
    assert perms.can_write(b"d\xff")
    assert not perms.can_write(b"e")
    assert perms.can_write(b"b", b"e")
    assert perms.can_write(b"c", b"d")
    assert not perms.can_write(b"a", b"c")
    assert not perms.can_write(b"c", b"f")
    assert not perms.can_write(b"c", b"\0")  # from c to the end
    assert not perms.can_read(b"c")


def test_from_key_permission_covers_every_later_key() -> None:
    perms = RangePermissions.of([Permission(RW, b"m", b"\0")])
    assert perms.can_read(b"m", b"\0")
    assert perms.can_write(b"zzzz")
    assert perms.can_read(b"n", b"\0")
    assert not perms.can_read(b"l", b"\0")


def test_touching_and_overlapping_permissions_combine() -> None:
    perms = RangePermissions.of(
        [Permission(R, b"a", b"c"), Permission(R, b"c", b"e"), Permission(RW, b"d", b"g")]
    )
    assert perms.can_read(b"a", b"g")
    assert not perms.can_read(b"a", b"h")
    assert perms.can_write(b"d", b"g")
    assert not perms.can_write(b"c", b"g")


def test_a_gap_breaks_coverage() -> None:
    perms = RangePermissions.of([Permission(R, b"a", b"c"), Permission(R, b"d", b"f")])
    assert perms.can_read(b"a", b"c")
    assert perms.can_read(b"d", b"f")
    assert not perms.can_read(b"a", b"f")
    assert not perms.can_read(b"c")


def test_no_permissions_cover_nothing() -> None:
    perms = RangePermissions.of([])
    assert not perms.can_read(b"a")
    assert not perms.can_write(b"", b"\0")


keys = st.text(alphabet="abc", min_size=1, max_size=3).map(str.encode)


@given(st.lists(st.tuples(keys, keys), max_size=6), keys)
def test_merged_intervals_hold_exactly_the_keys_of_the_originals(
    pairs: list[tuple[bytes, bytes]], probe: bytes
) -> None:
    intervals = [(min(a, b), max(a, b)) for a, b in pairs if a != b]
    merged = merge_intervals(intervals)
    inside_original = any(lo <= probe < hi for lo, hi in intervals)
    inside_merged = any(lo <= probe and (hi is None or probe < hi) for lo, hi in merged)
    assert inside_original == inside_merged
    for (_, end), (begin, _) in itertools.pairwise(merged):
        assert end is not None and end < begin  # disjoint and not touching
