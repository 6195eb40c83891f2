"""Reads of the key index (bucket `key_index`): the newest version of keys at a revision.

Every function is a cursor walk; nothing is cached in memory. See `_codec` for the layout
that makes "all revisions of a key are adjacent, keys in byte order" hold.
"""

from __future__ import annotations

from collections.abc import Callable
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
        self._db = db
        #: LMDB's key size limit: longer index keys cannot exist.
        self.max_key_bytes = max_key_bytes

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
        # LMDB refuses seek keys longer than its key limit; no stored key is that long, so
        # seek to a truncated prefix (which sorts no later) and skip what lies before `start`.
        skip_before = len(start) > self.max_key_bytes
        ok = cur.set_range(start[: self.max_key_bytes] if skip_before else start)
        while ok:
            if not skip_before and (not collect or 0 < limit <= len(kvs)):
                # Nothing more to decode: count the rest in the tight loop.
                return kvs, count + self._count_from(cur, end_prefix, gte, bound)
            ikey, record = cur.item()
            if not gte and ikey >= end_prefix:
                break
            plen = len(ikey) - codec.REV_BYTES
            prefix = ikey[:plen]
            if skip_before:
                if prefix < start:
                    ok = cur.set_range(codec.next_group(prefix))
                    continue
                skip_before = False
            if ikey[plen:] > bound:
                # Even the oldest revision of this key is newer than `rev`.
                ok = cur.set_range(codec.next_group(prefix))
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
                    ok = cur.set_range(codec.next_group(prefix))
                    break
                ikey, record = nkey, nrec
                steps += 1
                if steps >= WALK_BEFORE_SEEK:
                    ikey, record = self._seek_newest(cur, prefix, rev)
                    ok = cur.set_range(codec.next_group(prefix))
                    break
            if record[0] == codec.KIND_PUT:
                count += 1
                if collect and (limit <= 0 or len(kvs) < limit):
                    kvs.append(codec.decode_kv(ikey, record))
        return kvs, count

    @staticmethod
    def _count_from(cur: lmdb.Cursor[bytes], end_prefix: bytes, gte: bool, bound: bytes) -> int:
        """Count live keys from the cursor's key on: the hot loop of count and limit reads.

        The cursor sits on the first revision of a key. Each key's liveness is the kind of
        its newest entry at <= bound; the C iterator walks entries without a Python call per
        cursor step, and a seek skips entries newer than `bound`.
        """
        count = 0
        while True:
            group = b""
            live = False
            resume = b""
            for ikey, record in cur.iternext():
                if not gte and ikey >= end_prefix:
                    break
                prefix = ikey[: -codec.REV_BYTES]
                if prefix != group:
                    count += live
                    group = prefix
                    live = False
                if ikey[-codec.REV_BYTES :] > bound:
                    resume = codec.next_group(prefix)
                    break
                live = record[0] == codec.KIND_PUT
            count += live
            if not resume or not cur.set_range(resume):
                return count

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
        if codec.index_key_len(key) > self.max_key_bytes:
            return None  # such a key can never have been stored
        prefix = codec.group_prefix(key)
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
