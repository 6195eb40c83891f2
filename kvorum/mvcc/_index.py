"""Reads of the key index (bucket `key_index`): the newest version of keys at a revision.

Every function is a cursor walk; nothing is cached in memory. See `_codec` for the layout
that makes "all revisions of a key are adjacent, keys in byte order" hold outside zones that
hold spill (long) keys. A range walk takes such a zone as one unit: it decodes the newest
version of every key in it, keeps those in range and sorts them by key. The work is linear in
the zone's keys and the memory is bounded by the limit (or the result itself, without one).
"""

from __future__ import annotations

import heapq
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING

from kvorum.mvcc import _codec as codec
from kvorum.mvcc.types import KeyValue

if TYPE_CHECKING:
    import lmdb
    from lmdb import _Database

#: a key's revisions walked one by one before the range walk seeks past the rest.
WALK_BEFORE_SEEK = 8


def is_gte(range_end: bytes) -> bool:
    """etcd encodes "every key >= key" as range_end b"\\0"."""
    return range_end == b"\x00"


def in_range(key: bytes, start: bytes, end: bytes) -> bool:
    """Whether `key` is in etcd's [start, end): b"" = just `start`, b"\\0" = no upper end."""
    if end == b"":
        return key == start
    if is_gte(end):
        return key >= start
    return start <= key < end


class KeyIndex:
    """Cursor walks over the key index; `db` yields the current bucket handle."""

    def __init__(self, db: Callable[[], _Database], max_key_bytes: int) -> None:
        if max_key_bytes < codec.MAX_INDEX_KEY_BYTES:
            raise ValueError(f"LMDB key limit {max_key_bytes} < {codec.MAX_INDEX_KEY_BYTES}")
        self._db = db

    def walk(
        self,
        txn: lmdb.Transaction[bytes],
        key: bytes,
        end: bytes,
        rev: int,
        limit: int,
        *,
        collect: bool,
    ) -> tuple[list[KeyValue], int]:
        """Keys live at `rev` in [key, end): up to `limit` decoded (0 = all), and their count."""
        cur = txn.cursor(db=self._db())
        if end == b"":
            found = self.newest(cur, key, rev)
            if found is None or found[1][0] != codec.KIND_PUT:
                return [], 0
            return ([codec.decode_kv(found[0], found[1])] if collect else []), 1
        gte = is_gte(end)
        if not gte and end <= key:
            return [], 0
        end_prefix = b"" if gte else codec.group_prefix(end)
        bound = codec.visible_bound(rev)
        kvs: list[KeyValue] = []
        count = 0
        start = codec.group_prefix(key)
        # A start prefix longer than a zone may lie inside one (and may exceed LMDB's seek key
        # limit): seek to its zone's first byte string, which sorts no later, and skip what
        # lies before `start`. A shorter one lies outside every zone.
        skip_before = len(start) > codec.ZONE_BYTES
        ok = cur.set_range(start[: codec.ZONE_BYTES] if skip_before else start)
        zones = _ZoneProbe(txn, self._db())
        while ok:
            ikey, record = cur.item()
            eligible = len(ikey) >= codec.ZONE_MIN_INDEX_BYTES
            if eligible and zones.has_spill(ikey):
                zone = ikey[: codec.ZONE_BYTES]
                if not gte and zone >= end_prefix:
                    break
                room = (max(0, limit - len(kvs)) if limit > 0 else -1) if collect else 0
                zone_kvs, n = self._zone(cur, zone, key, end, rev, room)
                kvs.extend(zone_kvs)
                count += n
                skip_before = False
                after = codec.zone_end(zone)
                ok = after is not None and cur.set_range(after)
                continue
            if not (eligible or skip_before) and (not collect or 0 < limit <= len(kvs)):
                # Nothing more to decode: count the rest in the tight loop.
                n, ok = self._count_from(cur, end_prefix, gte, bound)
                count += n
                continue
            if not gte and ikey >= end_prefix:
                break
            plen = len(ikey) - codec.REV_BYTES
            prefix = ikey[:plen]
            if skip_before:
                if prefix < start:
                    ok = cur.set_range(codec.after_revisions(prefix))
                    continue
                skip_before = False
            if ikey[plen:] > bound:
                # Even the oldest revision of this key is newer than `rev`.
                ok = cur.set_range(codec.after_revisions(prefix))
                continue
            # Invariant: (ikey, record) is the newest entry of this key seen so far at <= rev.
            steps = 0
            while True:
                ok = cur.next()
                if not ok:
                    break
                nkey, nrec = cur.item()
                if not nkey.startswith(prefix):
                    break  # the cursor sits on the next key's first revision
                if nkey[plen:] > bound:
                    ok = cur.set_range(codec.after_revisions(prefix))
                    break
                ikey, record = nkey, nrec
                steps += 1
                if steps >= WALK_BEFORE_SEEK:
                    ikey, record = self._seek_newest(cur, prefix, rev)
                    ok = cur.set_range(codec.after_revisions(prefix))
                    break
            if record[0] == codec.KIND_PUT:
                count += 1
                if collect and (limit <= 0 or len(kvs) < limit):
                    kvs.append(codec.decode_kv(ikey, record))
        return kvs, count

    def _zone(
        self,
        cur: lmdb.Cursor[bytes],
        zone: bytes,
        start: bytes,
        end: bytes,
        rev: int,
        room: int,
    ) -> tuple[list[KeyValue], int]:
        """The zone's live keys in [start, end) at `rev`: the first `room` of them in key
        order (-1 = all), and their count. Moves `cur`."""
        count = 0

        def counted() -> Iterator[KeyValue]:
            nonlocal count
            for kv in self._zone_live(cur, zone, rev):
                if in_range(kv.key, start, end):
                    count += 1
                    yield kv

        if room < 0:
            found = sorted(counted(), key=_by_key)
        elif room == 0:
            found = []
            for _ in counted():
                pass  # counted() does the counting
        else:
            # Memory stays bounded by `room` however large the zone is.
            found = heapq.nsmallest(room, counted(), key=_by_key)
        return found, count

    @staticmethod
    def _zone_live(cur: lmdb.Cursor[bytes], zone: bytes, rev: int) -> Iterator[KeyValue]:
        """Newest version at `rev` of every key with an index key in `zone`, if a put."""
        ok = cur.set_range(zone)
        while ok:
            ikey = cur.key()
            if not ikey.startswith(zone):
                return
            prefix = ikey[: -codec.REV_BYTES]
            if cur.set_range(prefix + codec.rev_bytes(rev + 1, 0)):
                cur.prev()
            else:
                cur.last()
            nkey, record = cur.item()
            # The group's first entry exists, so the step back lands on it or later, unless
            # every revision of the key is newer than `rev` (then it lands on another key).
            if len(nkey) == len(ikey) and nkey.startswith(prefix) and record[0] == codec.KIND_PUT:
                yield codec.decode_kv(nkey, record)
            ok = cur.set_range(codec.after_revisions(prefix))

    @staticmethod
    def _count_from(
        cur: lmdb.Cursor[bytes], end_prefix: bytes, gte: bool, bound: bytes
    ) -> tuple[int, bool]:
        """Count live keys from the cursor's key on: the hot loop of count and limit reads.

        The cursor sits on the first revision of a key. Each key's liveness is the kind of
        its newest entry at <= bound; the C iterator walks entries without a Python call per
        cursor step, and a seek skips entries newer than `bound`. Stops at the first index
        key that may lie in a spill zone, leaving the cursor on it: (count, True); at the end
        of the range: (count, False).
        """
        count = 0
        zone_min = codec.ZONE_MIN_INDEX_BYTES
        while True:
            group = b""
            live = False
            resume = b""
            for ikey, record in cur.iternext():
                if not gte and ikey >= end_prefix:
                    if len(ikey) >= zone_min:
                        # Its zone may hold spill keys that sort (by key) before `end`.
                        return count + live, True
                    break
                prefix = ikey[: -codec.REV_BYTES]
                if prefix != group:
                    if len(ikey) >= zone_min:
                        # Checked once per key, on its first entry (the length is per key).
                        return count + live, True
                    count += live
                    group = prefix
                    live = False
                if ikey[-codec.REV_BYTES :] > bound:
                    resume = codec.next_group(prefix)
                    break
                live = record[0] == codec.KIND_PUT
            count += live
            if not resume or not cur.set_range(resume):
                return count, False

    @staticmethod
    def _seek_newest(cur: lmdb.Cursor[bytes], prefix: bytes, rev: int) -> tuple[bytes, bytes]:
        """Newest entry of group `prefix` at <= rev; the group must have one."""
        if cur.set_range(prefix + codec.rev_bytes(rev + 1, 0)):
            cur.prev()
        else:
            cur.last()
        return cur.item()

    def newest(self, cur: lmdb.Cursor[bytes], key: bytes, rev: int) -> tuple[bytes, bytes] | None:
        """(index key, record) of `key`'s newest entry at main revision <= rev, or None."""
        prefix = codec.index_prefix(key)
        past = cur.set_range(prefix + codec.rev_bytes(rev + 1, 0))
        if not (cur.prev() if past else cur.last()):
            return None
        ikey, record = cur.item()
        if len(ikey) != len(prefix) + codec.REV_BYTES or not ikey.startswith(prefix):
            return None
        return ikey, record

    def live(self, txn: lmdb.Transaction[bytes], key: bytes, rev: int) -> KeyValue | None:
        cur = txn.cursor(db=self._db())
        found = self.newest(cur, key, rev)
        if found is None or found[1][0] != codec.KIND_PUT:
            return None
        return codec.decode_kv(found[0], found[1])


class _ZoneProbe:
    """Answers "does this index key's zone hold spill keys?" with one seek per zone."""

    __slots__ = ("_cur", "_db", "_has", "_txn", "_zone")

    def __init__(self, txn: lmdb.Transaction[bytes], db: _Database) -> None:
        self._txn = txn
        self._db = db
        self._cur: lmdb.Cursor[bytes] | None = None  # opened on first use: most walks never ask
        self._zone = b""
        self._has = False

    def has_spill(self, ikey: bytes) -> bool:
        zone = ikey[: codec.ZONE_BYTES]
        if zone != self._zone:
            if self._cur is None:
                self._cur = self._txn.cursor(db=self._db)
            cur = self._cur
            self._zone = zone
            marked = zone + codec.SPILL_MARK
            # Spill keys of a zone are adjacent at zone + mark (see `_codec`).
            self._has = (
                cur.set_range(marked) and cur.key().startswith(marked) and codec.is_spill(cur.key())
            )
        return self._has


def _by_key(kv: KeyValue) -> bytes:
    return kv.key
