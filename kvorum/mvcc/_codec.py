"""Byte layouts of the mvcc buckets; every encoding lives here.

Revision: `{main, sub}` as two big-endian u64 (16 bytes), so byte order is revision order.

Index key (bucket `key_index`): `escape(user_key) + SEP + revision`. `escape` doubles every
0x00 as 0x00 0xFF and `SEP` is 0x00 0x00, which never occurs inside an escaped key. So:
  * byte order of index keys is (user key, revision) order, keys compared as plain bytes
    (a key that is a prefix of another sorts first, as in etcd);
  * all revisions of one user key are adjacent and share the "group prefix" escape(key)+SEP;
  * escape(key) + 0x00 0x01 sorts after every revision of `key` and before the next key.
Revisions' top byte is below 0xFF (main < 2**63), which the ordering argument relies on.

Index value: a put record `kind | create_revision | version | lease | value`, or a tombstone
record `kind` alone. Revision log value (bucket `key`): `kind | user key`.
"""

from __future__ import annotations

import struct
from typing import Final

from kvorum.mvcc.types import KeyValue

REV: Final = struct.Struct(">QQ")
REV_BYTES: Final = 16
MAX_SUB: Final = (1 << 64) - 1
SEP: Final = b"\x00\x00"
_NEXT_GROUP_TAIL: Final = b"\x01"

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
    return key.replace(b"\x00", b"\x00\xff") + SEP


def next_group(prefix: bytes) -> bytes:
    """Smallest index key after every revision of the group `prefix`."""
    return prefix[:-1] + _NEXT_GROUP_TAIL


def index_key_len(key: bytes) -> int:
    return len(key) + key.count(b"\x00") + len(SEP) + REV_BYTES


def user_key(index_key: bytes) -> bytes:
    return index_key[: -REV_BYTES - len(SEP)].replace(b"\x00\xff", b"\x00")


def put_record(create_revision: int, version: int, lease: int, value: bytes) -> bytes:
    return _PUT_HEADER.pack(KIND_PUT, create_revision, version, lease) + value


def decode_kv(index_key: bytes, record: bytes) -> KeyValue:
    """KeyValue of a put record stored under `index_key`."""
    _kind, create, version, lease = _PUT_HEADER.unpack_from(record)
    return KeyValue(
        key=user_key(index_key),
        create_revision=create,
        mod_revision=rev_main(index_key),
        version=version,
        value=record[PUT_HEADER_BYTES:],
        lease=lease,
    )


def decode_kv_keyless(key: bytes, mod_revision: int, record: bytes) -> KeyValue:
    _kind, create, version, lease = _PUT_HEADER.unpack_from(record)
    return KeyValue(key, create, mod_revision, version, record[PUT_HEADER_BYTES:], lease)
