"""Walks of the revision log (bucket `key`) that compaction and HashKV are made of.

Compaction at C keeps, per key, its newest version at or below C unless that is a tombstone,
and removes every other revision at or below C (etcd's keyIndex.compact). It runs in bounded
batches over the revision log, in revision order, from the last processed entry:

  for each entry (key, r) with r <= C:
    * the key's previous index entry, if any, is removed: it is older than r <= C, so it is
      superseded. It can only be an already processed entry that was kept (every older one
      was removed when its own successor was processed), so one step back suffices;
    * if the entry is a tombstone it is removed too.

Progress is the last processed revision, stored with the batch, so a restart resumes where it
stopped, and a newer compaction request simply extends the target of the running walk.
"""

from __future__ import annotations

import zlib
from typing import TYPE_CHECKING

from kvorum.mvcc import _codec as codec

if TYPE_CHECKING:
    import lmdb
    from lmdb import _Database


def compact_batch(
    txn: lmdb.Transaction[bytes],
    index_db: _Database,
    log_db: _Database,
    progress: bytes,
    target: int,
    max_revisions: int,
) -> tuple[bytes, bool]:
    """Compact up to `max_revisions` log entries after `progress`; (new progress, done)."""
    log = txn.cursor(db=log_db)
    batch: list[tuple[bytes, bytes]] = []
    ok = log.set_range(progress)
    if ok and log.key() == progress:
        ok = log.next()
    bound = codec.visible_bound(target)
    while ok and len(batch) < max_revisions:
        revb, entry = log.item()
        if revb > bound:
            break
        batch.append((revb, entry))
        ok = log.next()
    done = len(batch) < max_revisions or not ok or log.key() > bound
    cur = txn.cursor(db=index_db)
    for revb, entry in batch:
        prefix = codec.index_prefix(entry[1:])
        ikey = prefix + revb
        if not cur.set_key(ikey):
            raise AssertionError(f"revision log entry without index entry: {ikey!r}")
        if cur.prev():
            pkey = cur.key()
            if len(pkey) == len(ikey) and pkey.startswith(prefix):
                cur.delete()
                txn.delete(pkey[-codec.REV_BYTES :], db=log_db)
        if entry[0] == codec.KIND_TOMBSTONE:
            txn.delete(ikey, db=index_db)
            txn.delete(revb, db=log_db)
    return (batch[-1][0] if batch else progress), done


def hash_history(
    txn: lmdb.Transaction[bytes],
    index_db: _Database,
    log_db: _Database,
    revision: int,
    compact: int,
    seed: int,
) -> int:
    """crc32 of every entry up to `revision` that compaction at `compact` keeps.

    Entries at or below `compact` that compaction removes (or will remove, if it has not got
    there yet) are skipped, so the hash does not depend on compaction progress.
    """
    crc = seed
    index = txn.cursor(db=index_db)
    log = txn.cursor(db=log_db)
    upper = codec.visible_bound(revision)
    compact_bound = codec.visible_bound(compact) if compact >= 0 else b""
    ok = log.first()
    while ok:
        revb, entry = log.item()
        if revb > upper:
            break
        ikey = codec.index_prefix(entry[1:]) + revb
        if not index.set_key(ikey):
            raise AssertionError(f"revision log entry without index entry: {ikey!r}")
        record = index.value()
        if revb > compact_bound or _kept(index, ikey, record, compact_bound):
            crc = zlib.crc32(ikey, crc)
            crc = zlib.crc32(record, crc)
        ok = log.next()
    return crc


def _kept(cur: lmdb.Cursor[bytes], ikey: bytes, record: bytes, compact_bound: bytes) -> bool:
    """Whether compaction keeps this entry: a put with no newer version at <= the bound."""
    if record[0] != codec.KIND_PUT:
        return False
    if not cur.next():
        return True
    nkey = cur.key()
    plen = len(ikey) - codec.REV_BYTES
    same_key = len(nkey) == len(ikey) and nkey[:plen] == ikey[:plen]
    return not (same_key and nkey[plen:] <= compact_bound)
