"""Which key ranges a user may read and write: the union of its roles' permissions.

etcd keeps, per user, one interval tree for reads and one for writes and asks "does the union
of the intervals cover the whole requested range?" (`adt.IntervalTree.Contains`: the
intervals visited must be contiguous and span it). The same question is answered here over a
sorted list of disjoint intervals, merged once when the user's permissions are computed:
a range is covered exactly when one merged interval holds its start and reaches its end.

Intervals are half-open ``[begin, end)`` with ``end`` None for "up to every key" (etcd's
``range_end`` ``b"\\0"``). A single-key permission is ``[key, key + b"\\0")``, the smallest
interval that holds only `key`, as etcd's `NewBytesAffinePoint`.

A permission whose key is empty covers nothing, whatever its range end: etcd's byte
comparator reads an empty begin as +infinity, so its interval starts past every key. (etcdctl
never sends one: it turns ``""`` into ``"\\0"``; a raw RoleGrantPermission can.)
"""

from __future__ import annotations

import bisect
from collections.abc import Iterable
from dataclasses import dataclass

from kvorum.auth.types import Permission, PermType

__all__ = ["Interval", "RangePermissions", "merge_intervals", "request_interval"]

#: [begin, end); end None is +infinity.
Interval = tuple[bytes, bytes | None]


def permission_interval(perm: Permission) -> Interval:
    if not perm.range_end:
        return perm.key, perm.key + b"\0"
    if perm.range_end == b"\0":
        return perm.key, None
    return perm.key, perm.range_end


def request_interval(key: bytes, range_end: bytes) -> Interval:
    """The keys a request with etcd's (key, range_end) touches."""
    if not range_end:
        return key, key + b"\0"
    if range_end == b"\0":
        return key, None
    return key, range_end


def _end_before(a: bytes | None, b: bytes | None) -> bool:
    """a < b, with None as +infinity."""
    if a is None:
        return False
    return b is None or a < b


def merge_intervals(intervals: Iterable[Interval]) -> tuple[Interval, ...]:
    """Disjoint, sorted, non-touching intervals with the same union as `intervals`.

    Touching intervals ([a, b) and [b, c)) merge: etcd's Contains treats them as contiguous.
    """
    merged: list[Interval] = []
    for begin, end in sorted(intervals, key=lambda iv: iv[0]):
        if merged:
            last_begin, last_end = merged[-1]
            # Overlaps or touches the last one: extend it (None absorbs everything after).
            if last_end is None or begin <= last_end:
                if _end_before(last_end, end):
                    merged[-1] = (last_begin, end)
                continue
        merged.append((begin, end))
    return tuple(merged)


def _covers(merged: tuple[Interval, ...], begins: list[bytes], wanted: Interval) -> bool:
    begin, end = wanted
    i = bisect.bisect_right(begins, begin) - 1
    if i < 0:
        return False
    _, have_end = merged[i]
    if not _end_before(begin, have_end):  # begin is past this interval
        return False
    return not _end_before(have_end, end)


@dataclass(frozen=True, slots=True)
class RangePermissions:
    """A user's merged read and write intervals (etcd's unifiedRangePermissions)."""

    read: tuple[Interval, ...]
    write: tuple[Interval, ...]

    @classmethod
    def of(cls, permissions: Iterable[Permission]) -> RangePermissions:
        read: list[Interval] = []
        write: list[Interval] = []
        for perm in permissions:
            if not perm.key:
                continue  # covers nothing (see the module docstring)
            interval = permission_interval(perm)
            if perm.perm_type in (PermType.READ, PermType.READWRITE):
                read.append(interval)
            if perm.perm_type in (PermType.WRITE, PermType.READWRITE):
                write.append(interval)
        return cls(merge_intervals(read), merge_intervals(write))

    def can_read(self, key: bytes, range_end: bytes = b"") -> bool:
        return _covers(self.read, [b for b, _ in self.read], request_interval(key, range_end))

    def can_write(self, key: bytes, range_end: bytes = b"") -> bool:
        return _covers(self.write, [b for b, _ in self.write], request_interval(key, range_end))
