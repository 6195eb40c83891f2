"""The bbolt reader behind ``snapshot status``, on bbolt files built here page by page.

The builder writes bbolt's format as documented in ``kvorum/ctl/bbolt.py`` (meta pages with an
FNV-1a checksum, branch and leaf pages, sub-buckets inline or on their own pages, a freelist),
independently of the reader; the e2e tests compare the reader with etcdctl on real etcd files.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from kvorum.ctl import bbolt

PAGE = 4096
LEAF, BRANCH, META, FREELIST = 0x02, 0x01, 0x04, 0x10
NO_FREELIST = 0xFFFFFFFFFFFFFFFF


def fnv64a(data: bytes) -> int:
    h = 0xCBF29CE484222325
    for b in data:
        h = ((h ^ b) * 0x100000001B3) % (1 << 64)
    return h


def header(page_id: int, flags: int, count: int, overflow: int = 0) -> bytes:
    return struct.pack("<QHHI", page_id, flags, count, overflow)


def meta_page(
    page_id: int,
    root: int,
    freelist: int,
    high_water: int,
    txid: int,
    *,
    magic: int = bbolt.BOLT_MAGIC,
    version: int = 2,
    broken: bool = False,
) -> bytes:
    body = struct.pack("<IIIIQQQQQ", magic, version, PAGE, 0, root, 0, freelist, high_water, txid)
    checksum = fnv64a(body) ^ (1 if broken else 0)
    return (header(page_id, META, 0) + body + struct.pack("<Q", checksum)).ljust(PAGE, b"\0")


def leaf_body(items: list[tuple[bytes, bytes, bool]]) -> tuple[int, bytes]:
    """(count, elements + data) of a leaf page; ``pos`` is relative to each element."""
    elements = b""
    data = b""
    n = len(items)
    for i, (key, value, is_bucket) in enumerate(items):
        pos = (n - i) * 16 + len(data)
        elements += struct.pack("<IIII", 1 if is_bucket else 0, pos, len(key), len(value))
        data += key + value
    return n, elements + data


def leaf_page(page_id: int, items: list[tuple[bytes, bytes, bool]]) -> bytes:
    count, body = leaf_body(items)
    return (header(page_id, LEAF, count) + body).ljust(PAGE, b"\0")


def branch_page(page_id: int, children: list[tuple[bytes, int]]) -> bytes:
    elements = b""
    data = b""
    n = len(children)
    for i, (key, child) in enumerate(children):
        elements += struct.pack("<IIQ", (n - i) * 16 + len(data), len(key), child)
        data += key
    return (header(page_id, BRANCH, n) + elements + data).ljust(PAGE, b"\0")


def bucket_on_page(root: int) -> bytes:
    return struct.pack("<QQ", root, 0)


def inline_bucket(items: list[tuple[bytes, bytes, bool]]) -> bytes:
    count, body = leaf_body(items)
    return struct.pack("<QQ", 0, 0) + header(0, LEAF, count) + body


def rev(main: int, sub: int = 0) -> bytes:
    return main.to_bytes(8, "big") + b"_" + sub.to_bytes(8, "big")


@dataclass
class Db:
    """A small etcd-shaped bbolt file: buckets ``key`` (a branch over two leaves) and ``meta``
    (inline), plus whatever a test changes."""

    key_left: list[tuple[bytes, bytes, bool]] = field(
        default_factory=lambda: [(rev(2), b"v2", False), (rev(3), b"v3", False)]
    )
    key_right: list[tuple[bytes, bytes, bool]] = field(
        default_factory=lambda: [(rev(4), b"v4", False), (rev(5, 1), b"v5", False)]
    )
    meta_items: list[tuple[bytes, bytes, bool]] = field(
        default_factory=lambda: [(b"consistent_index", b"\0" * 7 + b"\x09", False)]
    )
    root_extra: list[tuple[bytes, bytes, bool]] = field(default_factory=list)
    freelist: int = NO_FREELIST
    freed: list[int] = field(default_factory=list)
    high_water: int = 6

    def pages(self) -> list[bytes]:
        root_items = sorted(
            [
                (b"key", bucket_on_page(3), True),
                (b"meta", inline_bucket(self.meta_items), True),
                *self.root_extra,
            ]
        )
        pages = [
            meta_page(0, 2, self.freelist, self.high_water, txid=4),
            meta_page(1, 2, self.freelist, self.high_water, txid=3),
            leaf_page(2, root_items),
            branch_page(3, [(self.key_left[0][0], 4), (self.key_right[0][0], 5)]),
            leaf_page(4, self.key_left),
            leaf_page(5, self.key_right),
        ]
        if self.freelist != NO_FREELIST:
            ids = b"".join(struct.pack("<Q", i) for i in self.freed)
            pages.append((header(6, FREELIST, len(self.freed)) + ids).ljust(PAGE, b"\0"))
        return pages

    def write(self, path: Path, pages: list[bytes] | None = None, tail: bytes = b"") -> str:
        path.write_bytes(b"".join(pages if pages is not None else self.pages()) + tail)
        return str(path)


def expected_hash(db: Db) -> int:
    crc = bbolt.crc32c(b"key")
    for k, v, _ in db.key_left + db.key_right:
        crc = bbolt.crc32c(v, bbolt.crc32c(k, crc))
    crc = bbolt.crc32c(b"meta", crc)
    for k, v, _ in db.meta_items:
        crc = bbolt.crc32c(v, bbolt.crc32c(k, crc))
    return crc


def test_crc32c_known_answers() -> None:
    # RFC 3720 B.4 and the standard check value.
    assert bbolt.crc32c(b"123456789") == 0xE3069283
    assert bbolt.crc32c(bytes(32)) == 0x8A9136AA
    assert bbolt.crc32c(b"56789", bbolt.crc32c(b"1234")) == 0xE3069283


def test_status_walks_branches_leaves_and_inline_buckets(tmp_path: Path) -> None:
    db = Db()
    # A sha256 after the pages, as a saved snapshot has, is not bbolt's business.
    st = bbolt.status(db.write(tmp_path / "s.db", tail=b"h" * 32))
    assert st == bbolt.DBStatus(expected_hash(db), revision=5, total_key=5, total_size=6 * PAGE)


def test_status_of_the_newer_meta_or_the_valid_one(tmp_path: Path) -> None:
    db = Db()
    pages = db.pages()
    # meta 0 (txid 4) is newer; when it is damaged, meta 1 is used.
    pages[0] = meta_page(0, 2, NO_FREELIST, 6, txid=4, broken=True)
    assert bbolt.status(db.write(tmp_path / "a.db", pages)).total_key == 5
    pages[1] = meta_page(1, 2, NO_FREELIST, 6, txid=3, broken=True)
    with pytest.raises(bbolt.BoltError, match=r"^checksum error$"):
        bbolt.status(db.write(tmp_path / "b.db", pages))


@pytest.mark.parametrize(
    ("meta", "error"),
    [
        ({"magic": 0x12345678}, "invalid database"),
        ({"version": 1}, "version mismatch"),
    ],
)
def test_bad_meta_pages(tmp_path: Path, meta: dict[str, int], error: str) -> None:
    db = Db()
    pages = db.pages()
    pages[0] = meta_page(0, 2, NO_FREELIST, 6, txid=4, **meta)
    pages[1] = meta_page(1, 2, NO_FREELIST, 6, txid=3, **meta)
    with pytest.raises(bbolt.BoltError, match=f"^{error}$"):
        bbolt.status(db.write(tmp_path / "x.db", pages))


def test_files_that_are_not_bbolt(tmp_path: Path) -> None:
    empty = tmp_path / "empty.db"
    empty.write_bytes(b"")
    with pytest.raises(bbolt.BoltError, match=f"^write {empty}: bad file descriptor$"):
        bbolt.status(str(empty))
    short = tmp_path / "short.db"
    short.write_bytes(b"z" * 100)
    with pytest.raises(bbolt.BoltError, match=r"^invalid database$"):
        bbolt.status(str(short))
    with pytest.raises(FileNotFoundError):
        bbolt.status(str(tmp_path / "missing.db"))
    assert not bbolt.is_bolt(b"z" * 64)
    assert bbolt.is_bolt(Db().pages()[0][:32])


def test_a_top_level_key_that_is_not_a_bucket(tmp_path: Path) -> None:
    db = Db(root_extra=[(b"loose", b"value", False)])
    with pytest.raises(bbolt.BoltError, match=r"^cannot get hash of bucket loose$"):
        bbolt.status(db.write(tmp_path / "x.db"))


def test_integrity_check_reports_as_bbolt_does(tmp_path: Path) -> None:
    db = Db()
    pages = db.pages()
    # The branch names leaf 4 twice (and leaf 5 becomes unreachable: free without a freelist).
    pages[3] = branch_page(3, [(rev(2), 4), (rev(4), 4)])
    with pytest.raises(bbolt.BoltError) as err:
        bbolt.status(db.write(tmp_path / "x.db", pages))
    assert str(err.value) == (
        "snapshot file integrity check failed. 1 errors found.\npage 4: multiple references"
    )


def test_synced_freelist_accounts_for_every_page(tmp_path: Path) -> None:
    # Page 7 is free; page 8 below the high-water mark is neither free nor reachable.
    db = Db(freelist=6, freed=[7], high_water=9)
    pages = [*db.pages(), bytes(PAGE), bytes(PAGE)]
    with pytest.raises(bbolt.BoltError) as err:
        bbolt.status(db.write(tmp_path / "x.db", pages))
    assert str(err.value).endswith("1 errors found.\npage 8: unreachable unfreed")
    db = Db(freelist=6, freed=[7, 8], high_water=9)
    st = bbolt.status(db.write(tmp_path / "ok.db", [*db.pages(), bytes(PAGE), bytes(PAGE)]))
    assert st.total_size == 9 * PAGE and st.hash == expected_hash(db)
    db = Db(freelist=6, freed=[7, 7, 8], high_water=9)
    with pytest.raises(bbolt.BoltError, match="page 7: already freed"):
        bbolt.status(db.write(tmp_path / "dup.db", [*db.pages(), bytes(PAGE), bytes(PAGE)]))


def test_a_page_of_the_wrong_type(tmp_path: Path) -> None:
    db = Db()
    pages = db.pages()
    pages[5] = (header(5, FREELIST, 0)).ljust(PAGE, b"\0")
    with pytest.raises(bbolt.BoltError, match="page 5: invalid type: freelist"):
        bbolt.status(db.write(tmp_path / "x.db", pages))


def test_a_truncated_file_fails_cleanly(tmp_path: Path) -> None:
    db = Db()
    path = db.write(tmp_path / "x.db")
    data = Path(path).read_bytes()[: 4 * PAGE + 100]
    Path(path).write_bytes(data)
    # etcdctl dies of SIGBUS here; kvorumctl reports the damage.
    with pytest.raises(bbolt.BoltError, match="beyond the end of the file"):
        bbolt.status(path)
