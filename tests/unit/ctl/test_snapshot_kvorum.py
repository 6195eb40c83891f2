"""kvorum (LMDB) snapshot files: ``snapshot status`` of one and ``snapshot restore`` of one
into a data directory, driven through kvorumctl's ``run`` without a server."""

from __future__ import annotations

import hashlib
import io
import json
import struct
import zlib
from pathlib import Path

import pytest

from kvorum.backend import Backend, schema
from kvorum.ctl import bbolt, kvsnapshot
from kvorum.ctl.commands.snapshot import go_float, zap_line
from kvorum.ctl.gofmt import humanize_bytes
from kvorum.ctl.main import run
from kvorum.datadir import DataDir
from kvorum.ids import cluster_id, member_id
from kvorum.membership import MembershipStore
from kvorum.membership.store import META_REJECTED_CONF_CHANGE
from kvorum.membership.types import Member

TOKEN = "tok"
PEERS = {
    "n0": "http://127.0.0.1:7001",
    "n1": "http://127.0.0.1:7002",
    "n2": "http://127.0.0.1:7003",
}
REV_2 = (2).to_bytes(8, "big") + bytes(8)
REV_7 = (7).to_bytes(8, "big") + bytes(8)
USER_ITEMS = {
    schema.KEY: [(REV_2, b"\x00a"), (REV_7, b"\x00b")],
    schema.KEY_INDEX: [(b"a\0", b"rec-a"), (b"b\0", b"rec-b")],
    schema.LEASE: [(b"\0" * 7 + b"\x05", b"lease-5")],
}  # fmt: skip
REVISION = 7


def _run(argv: list[str]) -> tuple[int, bytes, bytes]:
    out, err = io.BytesIO(), io.BytesIO()

    def no_connect(*_: object) -> object:
        raise AssertionError("this command line must not connect")

    rc = run(argv, stdin=io.BytesIO(), stdout=out, stderr=err, environ={},
             connector=no_connect)  # type: ignore[arg-type]  # fmt: skip
    return rc, out.getvalue(), err.getvalue()


def make_snapshot(
    tmp_path: Path, *, with_hash: bool = True
) -> tuple[Path, list[tuple[bytes, bytes, bytes]]]:
    """A kvorum snapshot file as the Snapshot stream produces it, and every (bucket, key,
    value) it holds."""
    backend = Backend(str(tmp_path / "src" / "db"), map_size_bytes=64 << 20)
    txn = backend.batch.write()
    items: list[tuple[bytes, bytes, bytes]] = []
    for bucket, pairs in USER_ITEMS.items():
        for k, v in pairs:
            txn.put(k, v, db=backend.db(bucket))
            items.append((bucket, k, v))
    meta_items = [
        (schema.META_CURRENT_REVISION, struct.pack(">q", REVISION)),
        (META_REJECTED_CONF_CHANGE + struct.pack(">Q", 12), b""),
    ]
    for k, v in meta_items:
        txn.put(k, v, db=backend.db(schema.META))
        items.append((schema.META, k, v))
    old = MembershipStore(backend)
    old.add(Member(0xAA, "old", ("http://10.0.0.1:2380",)))
    old.remove(0xBB)
    old.set_cluster_id(0xC0FFEE)
    backend.set_consistent_index(40, 3)
    backend.batch.commit()
    with backend.view() as view:
        for bucket in (schema.MEMBERS, schema.MEMBERS_REMOVED, schema.META):
            for k, v in view.cursor(db=backend.db(bucket)):
                if (bucket, bytes(k), bytes(v)) not in items:
                    items.append((bucket, bytes(k), bytes(v)))
    with backend.snapshot() as snap:
        body = b"".join(snap)
    backend.close()
    path = tmp_path / "kvorum.db"
    path.write_bytes(body + (hashlib.sha256(body).digest() if with_hash else b""))
    return path, items


def test_status_of_a_kvorum_snapshot(tmp_path: Path) -> None:
    path, items = make_snapshot(tmp_path)
    crc = 0
    for name in sorted(schema.ALL_BUCKETS):
        crc = zlib.crc32(name, crc)
        for _, k, v in sorted(i for i in items if i[0] == name):
            crc = zlib.crc32(v, zlib.crc32(k, crc))
    rc, out, err = _run(["snapshot", "status", str(path), "-w", "json"])
    assert (rc, err) == (0, b""), err
    got = json.loads(out)
    assert got["hash"] == crc
    assert got["revision"] == REVISION
    assert got["totalKey"] == len(items)
    assert got["totalSize"] % 4096 == 0 and 0 < got["totalSize"] <= path.stat().st_size
    rc, out, _ = _run(["snapshot", "status", str(path)])
    size = humanize_bytes(got["totalSize"])
    assert out == f"{crc:x}, {REVISION}, {len(items)}, {size}\n".encode()
    rc, out, _ = _run(["snapshot", "status", str(path), "-w", "fields"])
    assert out.splitlines()[0] == f'"Hash" : {crc}'.encode()


def test_status_detects_the_format_by_magic(tmp_path: Path) -> None:
    path, _ = make_snapshot(tmp_path)
    head = path.read_bytes()[:32]
    assert kvsnapshot.is_lmdb(head) and not bbolt.is_bolt(head)
    garbage = tmp_path / "garbage.db"
    garbage.write_bytes(b"\x07" * 9000)
    assert _run(["snapshot", "status", str(garbage)]) == (1, b"", b"Error: invalid database\n")
    # A damaged LMDB file is reported, not a traceback.
    damaged = tmp_path / "damaged.db"
    damaged.write_bytes(head + b"\xff" * 5000)
    rc, _, err = _run(["snapshot", "status", str(damaged)])
    assert rc == 1 and err.startswith(b"Error: ")


def _restore_args(snapshot: Path, name: str, data_dir: Path, *extra: str) -> list[str]:
    initial = ",".join(f"{n}={u}" for n, u in PEERS.items())
    return [
        "snapshot", "restore", str(snapshot), "--name", name, "--initial-cluster", initial,
        "--initial-cluster-token", TOKEN, "--initial-advertise-peer-urls", PEERS[name],
        "--data-dir", str(data_dir), *extra,
    ]  # fmt: skip


def test_restore_writes_a_data_dir_for_the_new_cluster(tmp_path: Path) -> None:
    path, _ = make_snapshot(tmp_path)
    target = tmp_path / "n1.etcd"
    rc, out, err = _run(_restore_args(path, "n1", target))
    assert (rc, out) == (0, b""), err
    ids = {n: member_id([u], TOKEN) for n, u in PEERS.items()}
    cid = cluster_id(ids.values())
    lines = [json.loads(line) for line in err.splitlines()]
    assert [line["msg"] for line in lines] == [
        "restoring snapshot",
        *["added member"] * 3,
        "restored snapshot",
    ]
    assert [line["added-peer-id"] for line in lines[1:4]] == [
        f"{i:x}" for i in sorted(ids.values())
    ]
    assert {line["cluster-id"] for line in lines[1:4]} == {f"{cid:x}"}
    assert lines[0]["wal-dir"] == str(target / "member" / "wal")

    identity = DataDir(target).identity()
    assert (identity.member_id, identity.cluster_id) == (ids["n1"], cid)
    backend = Backend(str(target / "member" / "snap" / "db"), map_size_bytes=64 << 20)
    try:
        membership = MembershipStore(backend)
        assert membership.members() == tuple(
            sorted((Member(ids[n], n, (u,)) for n, u in PEERS.items()), key=lambda m: m.id)
        )
        assert membership.removed_ids() == ()
        assert membership.cluster_id() == cid
        assert not membership.was_rejected(12)
        assert backend.consistent_index() == (0, 0)
        with backend.view() as txn:
            for bucket, pairs in USER_ITEMS.items():
                assert [(bytes(k), bytes(v)) for k, v in txn.cursor(db=backend.db(bucket))] == pairs
    finally:
        backend.close()
    assert not list((target / "member" / "snap").glob("*.restoring*"))


def test_restore_refuses_and_cleans_up(tmp_path: Path) -> None:
    path, _ = make_snapshot(tmp_path)
    data = bytearray(path.read_bytes())
    data[100] ^= 1
    corrupt = tmp_path / "corrupt.db"
    corrupt.write_bytes(bytes(data))
    target = tmp_path / "t.etcd"
    rc, _, err = _run(_restore_args(corrupt, "n0", target))
    assert rc == 1 and b"Error: expected sha256 [" in err
    assert not target.exists()
    bare, _ = make_snapshot(tmp_path / "bare", with_hash=False)
    rc, _, err = _run(_restore_args(bare, "n0", target))
    assert err.endswith(b"Error: snapshot missing hash but --skip-hash-check=false\n")
    assert not target.exists()
    assert _run(_restore_args(bare, "n0", target, "--skip-hash-check"))[0] == 0
    assert _run(_restore_args(bare, "n0", target)) == (
        1, b"", f'Error: data-dir "{target}" exists\n'.encode()
    )  # fmt: skip


def test_restore_with_a_separate_wal_dir(tmp_path: Path) -> None:
    path, _ = make_snapshot(tmp_path)
    wal = tmp_path / "wal"
    target = tmp_path / "d"
    assert _run(_restore_args(path, "n2", target, "--wal-dir", str(wal)))[0] == 0
    assert list(wal.glob("*.wal")) and not (target / "member" / "wal").exists()
    identity = DataDir(target, wal).identity()
    assert identity.member_id == member_id([PEERS["n2"]], TOKEN)


@pytest.mark.parametrize(
    ("value", "text"),
    [(1795303452.4438834, "1795303452.4438834"), (0.004601757, "0.004601757"),
     (5e-05, "0.00005"), (2.0, "2")],
)  # fmt: skip
def test_zap_numbers(value: float, text: str) -> None:
    assert go_float(value) == text


def test_zap_line_shape() -> None:
    line = zap_line("saved", "snapshot/v3_snapshot.go:152", {"path": "x.db", "took": 0.5}, 1.5)
    assert line == (
        '{"level":"info","ts":1.5,"caller":"snapshot/v3_snapshot.go:152","msg":"saved",'
        '"path":"x.db","took":0.5}\n'
    )
