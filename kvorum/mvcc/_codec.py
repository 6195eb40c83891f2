"""Byte layouts of the mvcc buckets; every encoding lives here.

Revision: `{main, sub}` as two big-endian u64 (16 bytes), so byte order is revision order.

Index key (bucket `key_index`), short form: `escape(user_key) + SEP + revision`. `escape`
doubles every 0x00 as 0x00 0xFF and `SEP` is 0x00 0x00, which never occurs inside an escaped
key. So:
  * byte order of index keys is (user key, revision) order, keys compared as plain bytes
    (a key that is a prefix of another sorts first, as in etcd);
  * all revisions of one user key are adjacent and share the "group prefix" escape(key)+SEP;
  * escape(key) + 0x00 0x01 sorts after every revision of `key` and before the next key.
Revisions' top byte is below 0xFF (main < 2**63), which the ordering argument relies on.

Spill form. LMDB keys are at most 511 bytes; a key whose short form would be longer is stored
under `zone + SPILL_MARK + hash(user_key) + revision`, where `zone` is the first ZONE_BYTES
bytes of escape(user_key) (it may end in half of an escaped 0x00) and the hash is a 16-byte
blake2b. Every spill index key is exactly 511 bytes with SPILL_MARK (0x01 0x00 0x01) at offset
ZONE_BYTES; a short index key of that length holds escaped bytes there, where a 0x00 is always
followed by 0xFF, so the two forms cannot be confused. SPILL_MARK holds no SEP (nor does it
make one with a zone ending in 0x00), so no spill key starts with a short key's group prefix.
Properties the reads rely on:
  * a zone is the set of index keys that start with it: a contiguous range of the index;
  * an index key outside a zone differs from the zone inside its first ZONE_BYTES bytes (it
    cannot be a prefix of it: a zone holds no 0x00 0x00), so it sorts on the same side of every
    entry of the zone, and that side is its user key's side of every user key in the zone;
  * inside a zone that holds spill entries the index order is NOT key order (spill groups are
    ordered by hash), so readers take such a zone as one unit: decode it, sort by user key.
    Only keys whose escaped form is at least ZONE_BYTES - 1 bytes can share a zone with a
    spill key, so index keys shorter than ZONE_MIN_INDEX_BYTES never need that check;
  * all revisions of one long key are still adjacent, under the group prefix
    zone + SPILL_MARK + hash, so per-key walks (newest, compaction) work unchanged.
The spill put record carries the full user key (the index key cannot give it back). Two long
keys with the same zone and the same 128-bit hash would share one history; that is accepted as
impossible in practice. Stores without long keys hold no spill entries, so the format of
existing data is unchanged (an older kvorum must not open a store that has spill entries).

Index value: a put record `kind | create_revision | version | lease | value` (spill:
`kind | create_revision | version | lease | u32 key length | key | value`), or a tombstone
record `kind` alone. Revision log value (bucket `key`): `kind | user key`.
"""

from __future__ import annotations

import hashlib
import struct
from typing import Final

from kvorum.mvcc.types import KeyValue

REV: Final = struct.Struct(">QQ")
REV_BYTES: Final = 16
MAX_SUB: Final = (1 << 64) - 1
SEP: Final = b"\x00\x00"
_NEXT_GROUP_TAIL: Final = b"\x01"

#: LMDB's compiled-in key size limit; the on-disk layout depends on it, so it is fixed here.
MAX_INDEX_KEY_BYTES: Final = 511
HASH_BYTES: Final = 16
#: never inside an escaped key (0x00 is followed by 0xFF there), and free of SEP even when the
#: zone ends in a 0x00: so no short group prefix is a prefix of a spill key, nor vice versa.
SPILL_MARK: Final = b"\x01\x00\x01"
#: zone length: a spill index key (zone + mark + hash + revision) fills the LMDB key limit.
ZONE_BYTES: Final = MAX_INDEX_KEY_BYTES - len(SPILL_MARK) - HASH_BYTES - 16
#: shortest index key that may lie in a zone shared with spill keys (escaped key of
#: ZONE_BYTES - 1 bytes: its SEP's first byte completes the zone).
ZONE_MIN_INDEX_BYTES: Final = ZONE_BYTES - 1 + 2 + 16
#: sorts after every revision suffix (their top byte is below 0xFF).
_AFTER_REVISIONS: Final = b"\xff"
_KEY_LEN: Final = struct.Struct(">I")

KIND_PUT: Final = 0x70  # "p"
KIND_TOMBSTONE: Final = 0x74  # "t"
TOMBSTONE_RECORD: Final = bytes([KIND_TOMBSTONE])

_PUT_HEADER: Final = struct.Struct(">Bqqq")
PUT_HEADER_BYTES: Final = _PUT_HEADER.size


def rev_bytes(main: int, sub: int = 0) -> bytes:
    return REV.pack(main, sub)


def rev_main(raw: bytes) -> int:
    """The main revision of a 16-byte revision (or of the revision suffix of an index key)."""
    return int.from_bytes(raw[-REV_BYTES:-8], "big")


def visible_bound(rev: int) -> bytes:
    """Largest revision suffix visible at main revision `rev`."""
    return REV.pack(rev, MAX_SUB)


def group_prefix(key: bytes) -> bytes:
    """Short-form group prefix: the index prefix of a key that is not `is_long`; for a long
    key only a bound to compare index keys with (its entries are in spill form)."""
    return key.replace(b"\x00", b"\x00\xff") + SEP


def is_long(key: bytes) -> bool:
    """Whether `key` is stored in spill form."""
    return index_key_len(key) > MAX_INDEX_KEY_BYTES


def index_prefix(key: bytes) -> bytes:
    """The prefix every index key of `key` has: its index key is this + revision."""
    escaped = key.replace(b"\x00", b"\x00\xff")
    if len(escaped) + len(SEP) + REV_BYTES <= MAX_INDEX_KEY_BYTES:
        return escaped + SEP
    digest = hashlib.blake2b(key, digest_size=HASH_BYTES).digest()
    return escaped[:ZONE_BYTES] + SPILL_MARK + digest


def is_spill(index_key: bytes) -> bool:
    return (
        len(index_key) == MAX_INDEX_KEY_BYTES
        and index_key[ZONE_BYTES : ZONE_BYTES + len(SPILL_MARK)] == SPILL_MARK
    )


def after_revisions(prefix: bytes) -> bytes:
    """Smallest seek key after every revision of the group `prefix` (either form)."""
    return prefix + _AFTER_REVISIONS


def zone_end(zone: bytes) -> bytes | None:
    """Smallest byte string after every key that starts with `zone`; None if there is none."""
    stripped = zone.rstrip(b"\xff")
    if not stripped:
        return None
    return stripped[:-1] + bytes([stripped[-1] + 1])


def next_group(prefix: bytes) -> bytes:
    """Smallest index key after every revision of the group `prefix`."""
    return prefix[:-1] + _NEXT_GROUP_TAIL


def index_key_len(key: bytes) -> int:
    return len(key) + key.count(b"\x00") + len(SEP) + REV_BYTES


def user_key(index_key: bytes) -> bytes:
    return index_key[: -REV_BYTES - len(SEP)].replace(b"\x00\xff", b"\x00")


def put_record(
    create_revision: int, version: int, lease: int, value: bytes, key: bytes | None = None
) -> bytes:
    """A put record; `key` is given for a spill-form key (the record must carry it)."""
    header = _PUT_HEADER.pack(KIND_PUT, create_revision, version, lease)
    if key is None:
        return header + value
    return header + _KEY_LEN.pack(len(key)) + key + value


def _spill_key_value(record: bytes) -> tuple[bytes, bytes]:
    (klen,) = _KEY_LEN.unpack_from(record, PUT_HEADER_BYTES)
    start = PUT_HEADER_BYTES + _KEY_LEN.size
    return record[start : start + klen], record[start + klen :]


def decode_kv(index_key: bytes, record: bytes) -> KeyValue:
    """KeyValue of a put record stored under `index_key`."""
    _kind, create, version, lease = _PUT_HEADER.unpack_from(record)
    if is_spill(index_key):
        key, value = _spill_key_value(record)
    else:
        key, value = user_key(index_key), record[PUT_HEADER_BYTES:]
    return KeyValue(
        key=key,
        create_revision=create,
        mod_revision=rev_main(index_key),
        version=version,
        value=value,
        lease=lease,
    )


def decode_kv_keyless(key: bytes, mod_revision: int, record: bytes) -> KeyValue:
    """KeyValue of `key`'s put record (either form) at `mod_revision`."""
    _kind, create, version, lease = _PUT_HEADER.unpack_from(record)
    value = _spill_key_value(record)[1] if is_long(key) else record[PUT_HEADER_BYTES:]
    return KeyValue(key, create, mod_revision, version, value, lease)
