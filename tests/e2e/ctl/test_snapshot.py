"""``snapshot save|status|restore``: kvorumctl against the real etcdctl 3.4 on a real etcd, and a
kvorum snapshot restored into a new 3-member kvorum cluster."""

from __future__ import annotations

import io
import os
import re
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from kvorum.ctl import _conn
from kvorum.ctl.main import run
from kvorum.testing import CLUSTER_TOKEN, ETCD, ETCDCTL, Cluster
from kvorum.testing.cluster import binary_for
from tests.e2e.ctl.helpers import CtlRun, assert_same_behaviour, etcdctl, kvorumctl, mask

pytestmark = [
    pytest.mark.skipif(
        shutil.which(ETCD) is None or shutil.which(ETCDCTL) is None,
        reason="etcd/etcdctl 3.4 not installed (run scripts/ensure-debian-packages)",
    ),
    pytest.mark.timeout(180),
]

DATA = [(b"a", b"1"), (b"b", b"2"), (b"c/x", b"3"), ("ü".encode(), "日本".encode())]
FORMATS = ("simple", "json", "table", "fields", "protobuf")
_ZAP_NUMBERS = re.compile(rb'"(ts|took)":[0-9.e-]+')


def zap_mask(data: bytes) -> bytes:
    """Mask zap's epoch times and durations (and clientv3's ISO times)."""
    return _ZAP_NUMBERS.sub(rb'"\1":<n>', mask(data))


@pytest.fixture(scope="module")
def etcd_ep(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    cluster = Cluster(ETCD, 1, base_dir=tmp_path_factory.mktemp("snap-etcd"))
    cluster.start()
    try:
        flag = f"--endpoints={cluster.member(0).client_url}"
        for key, value in DATA:
            assert etcdctl([flag, "put", key, value]).rc == 0
        yield flag
    finally:
        cluster.stop()


def _save_both(ep: str, path: Path) -> tuple[CtlRun, CtlRun, Path]:
    """etcdctl then kvorumctl save to ``path``; etcdctl's file is moved to ``path.etcd``."""
    a = etcdctl([ep, "snapshot", "save", str(path)])
    assert a.rc == 0, a
    etcd_file = path.with_suffix(".etcd")
    os.replace(path, etcd_file)
    b = kvorumctl([ep, "snapshot", "save", str(path)])
    return a, b, etcd_file


def test_save_prints_what_etcdctl_prints(etcd_ep: str, tmp_path: Path) -> None:
    target = tmp_path / "snap.db"
    a, b, etcd_file = _save_both(etcd_ep, target)
    assert (b.rc, b.out) == (a.rc, a.out)
    assert zap_mask(b.err) == zap_mask(a.err)
    assert not (tmp_path / "snap.db.part").exists()
    # The same state, the same file: bbolt pages and the trailing sha256 alike.
    saved = target.read_bytes()
    assert len(saved) % 512 == 32
    assert saved == etcd_file.read_bytes()


@pytest.mark.parametrize("fmt", FORMATS)
def test_status_of_an_etcd_snapshot(etcd_ep: str, tmp_path: Path, fmt: str) -> None:
    target = tmp_path / "snap.db"
    assert kvorumctl([etcd_ep, "snapshot", "save", str(target)]).rc == 0
    got = assert_same_behaviour(["snapshot", "status", str(target), f"--write-out={fmt}"])
    if fmt == "json":
        assert b'"revision":5' in got.out  # four puts after revision 1


def test_status_after_more_writes_and_a_delete(etcd_ep: str, tmp_path: Path) -> None:
    for i in range(40):
        assert etcdctl([etcd_ep, "put", f"bulk/{i:03d}", "x" * 300]).rc == 0
    assert etcdctl([etcd_ep, "del", "bulk/", "--prefix"]).rc == 0
    target = tmp_path / "snap.db"
    assert kvorumctl([etcd_ep, "snapshot", "save", str(target)]).rc == 0
    # Enough keys that bbolt's "key" bucket spans branch and leaf pages.
    assert_same_behaviour(["snapshot", "status", str(target), "-w", "json"])


@pytest.mark.parametrize(
    "case",
    [
        ["snapshot"],
        ["snapshot", "--help"],
        ["snapshot", "save", "-h"],
        ["snapshot", "status", "--help"],
        ["snapshot", "restore", "--help"],
        ["help", "snapshot", "restore"],
        ["move-leader", "--help"],
        ["check"],
        ["check", "perf", "--help"],
        ["check", "datascale", "--help"],
        ["check", "perf", "--load=huge"],
        ["snapshot", "restore", "x.db", "--bogus"],
    ],
    ids=" ".join,
)
def test_help_and_usage_match(case: list[str]) -> None:
    assert_same_behaviour(case)


def _write(path: Path, data: bytes) -> str:
    path.write_bytes(data)
    return str(path)


def test_status_errors_match(tmp_path: Path) -> None:
    cases = [
        ["snapshot", "status"],
        ["snapshot", "status", "a", "b"],
        ["snapshot", "status", str(tmp_path / "missing.db")],
        ["snapshot", "status", _write(tmp_path / "garbage.db", b"x" * 10_000)],
        ["snapshot", "status", _write(tmp_path / "empty.db", b"")],
        ["snapshot", "status", _write(tmp_path / "short.db", b"y" * 100)],
        ["snapshot", "status", str(tmp_path / "missing.db"), "-w", "bogus"],
        ["snapshot", "save"],
        ["snapshot", "save", "a", "b"],
        ["snapshot", "restore"],
        ["move-leader"],
        ["move-leader", "zz"],
        ["move-leader", "1ffffffffffffffff"],
    ]
    for case in cases:
        assert_same_behaviour(case)


_STACKTRACE = re.compile(rb',"stacktrace":"[^"]*"')


def test_save_errors_match(etcd_ep: str, tmp_path: Path) -> None:
    assert_same_behaviour([etcd_ep, "snapshot", "save", str(tmp_path / "no" / "dir" / "x.db")])
    assert_same_behaviour(
        ["--endpoints=127.0.0.1:1,127.0.0.1:2", "snapshot", "save", str(tmp_path / "x.db")]
    )
    # Nobody answers: the stream is never created, the part file goes away.
    target = tmp_path / "dead.db"
    dead = ["--endpoints=127.0.0.1:1", "--command-timeout=1s", "snapshot", "save", str(target)]
    a = etcdctl(dead)
    b = kvorumctl(dead)
    assert (b.rc, b.out) == (a.rc, a.out) == (5, b"")
    # etcdctl's error line carries a Go stack trace, which kvorumctl has not.
    assert zap_mask(b.err) == zap_mask(_STACKTRACE.sub(b"", a.err))
    assert list(tmp_path.glob("dead.db*")) == []


def _restore_both(args: list[str], data_dir: Path) -> tuple[CtlRun, CtlRun]:
    """kvorumctl first: it leaves nothing behind on failure, where etcdctl may leave a partial
    data dir that would change what the second run says."""
    existed = data_dir.exists()
    b = kvorumctl(args)
    if b.rc != 0:
        assert data_dir.exists() == existed, (args, b)
    a = etcdctl(args)
    return a, b


def test_restore_argument_errors_match(etcd_ep: str, tmp_path: Path) -> None:
    snap = tmp_path / "snap.db"
    assert kvorumctl([etcd_ep, "snapshot", "save", str(snap)]).rc == 0
    existing = tmp_path / "existing"
    existing.mkdir()
    wal = tmp_path / "wal"
    wal.mkdir()
    cases = [
        ["snapshot", "restore", str(snap), "--data-dir", str(existing)],
        ["snapshot", "restore", str(snap), "--data-dir", str(tmp_path / "d1"), "--wal-dir",
         str(wal)],
        ["snapshot", "restore", str(snap), "--name", "x", "--data-dir", str(tmp_path / "d2")],
        ["snapshot", "restore", str(snap), "--data-dir", str(tmp_path / "d3"), "--name", "a",
         "--initial-cluster", "a=http://127.0.0.1:1,b=http://127.0.0.1:1",
         "--initial-advertise-peer-urls", "http://127.0.0.1:1"],
        ["snapshot", "restore", str(snap), "--data-dir", str(tmp_path / "d4"), "--name", "a",
         "--initial-cluster", "a=http://127.0.0.1:1,b=http://127.0.0.1:2",
         "--initial-advertise-peer-urls", "http://127.0.0.1:3"],
        ["snapshot", "restore", str(snap), "--data-dir", str(tmp_path / "d5"),
         "--initial-advertise-peer-urls", "bogus"],
        ["snapshot", "restore", str(tmp_path / "missing.db"), "--data-dir",
         str(tmp_path / "d6")],
        ["snapshot", "restore", _write(tmp_path / "garbage.db", b"x" * 10_000), "--data-dir",
         str(tmp_path / "d7")],
    ]  # fmt: skip
    for case in cases:
        a, b = _restore_both(case, Path(case[case.index("--data-dir") + 1]))
        assert b.rc == a.rc, (case, a, b)
        assert b.out == a.out, (case, a, b)
        assert zap_mask(b.err) == zap_mask(a.err), (case, a, b)


def test_restore_refuses_an_etcd_snapshot(etcd_ep: str, tmp_path: Path) -> None:
    snap = tmp_path / "snap.db"
    assert kvorumctl([etcd_ep, "snapshot", "save", str(snap)]).rc == 0
    target = tmp_path / "restored"
    got = kvorumctl(["snapshot", "restore", str(snap), "--data-dir", str(target)])
    assert got.rc == 1
    assert b"is an etcd (bbolt) snapshot" in got.err
    assert not target.exists()


# --- kvorum: save, status, restore into a new cluster -------------------------------------------


def _kvorum_cluster(size: int, base: Path) -> Cluster:
    return Cluster(binary_for("kvorum"), size, base_dir=base)


def test_restore_into_a_new_three_member_kvorum_cluster(tmp_path: Path) -> None:
    snap = tmp_path / "kvorum.db"
    with _kvorum_cluster(1, tmp_path / "old") as old:
        ep = f"--endpoints={old.member(0).client_url}"
        for key, value in DATA:
            assert kvorumctl([ep, "put", key, value]).rc == 0
        granted = kvorumctl([ep, "lease", "grant", "600"])
        assert granted.rc == 0, granted
        lease_hex = granted.out.split()[1].decode()
        assert kvorumctl([ep, "put", "leased", "v", f"--lease={lease_hex}"]).rc == 0
        assert kvorumctl([ep, "del", "b"]).rc == 0
        reference, saved, etcd_file = _save_both(ep, snap)
        assert saved.rc == 0, saved
        assert saved.out == reference.out == f"Snapshot saved at {snap}\n".encode()
        assert zap_mask(saved.err) == zap_mask(reference.err)
        # etcdctl's copy of the same state is the same kvorum snapshot.
        assert kvorumctl(["snapshot", "status", str(etcd_file)]).out == (
            kvorumctl(["snapshot", "status", str(snap)]).out
        )
        old_ids = kvorumctl([ep, "member", "list", "-w", "json"]).out

    status = kvorumctl(["snapshot", "status", str(snap), "-w", "json"])
    assert status.rc == 0, status
    # 4 puts, a lease put and a delete after revision 1.
    assert b'"revision":7' in status.out, status
    # etcdctl cannot read kvorum's (LMDB) snapshots; it says so as bbolt does.
    assert etcdctl(["snapshot", "status", str(snap)]).err == b"Error: invalid database\n"

    new = _kvorum_cluster(3, tmp_path / "new")
    initial = ",".join(f"{m.name}={m.spec.peer_url}" for m in new.members)
    for m in new.members:
        done = kvorumctl(
            [
                "snapshot", "restore", str(snap),
                "--name", m.name,
                "--initial-cluster", initial,
                "--initial-cluster-token", CLUSTER_TOKEN,
                "--initial-advertise-peer-urls", m.spec.peer_url,
                "--data-dir", str(m.spec.data_dir),
            ]
        )  # fmt: skip
        assert done.rc == 0, done
        assert done.out == b""
        assert done.err.count(b'"msg":"added member"') == 3
    # The restored dir refuses to be written over.
    first_dir = new.member(0).spec.data_dir
    again = kvorumctl(["snapshot", "restore", str(snap), "--data-dir", str(first_dir)])
    assert (again.rc, again.err) == (1, f'Error: data-dir "{first_dir}" exists\n'.encode())

    with new:
        for m in new.members:
            one = f"--endpoints={m.client_url}"
            listed = kvorumctl([one, "get", "", "--prefix", "--keys-only", "--consistency=s"])
            keys = [k for k in listed.out.split(b"\n") if k]
            assert keys == [b"a", b"c/x", b"leased", "ü".encode()], (m.name, listed)
        every = "--endpoints=" + ",".join(new.endpoints)
        members = kvorumctl([every, "member", "list"])
        assert members.rc == 0 and members.out.count(b"started") == 3, members
        assert members.out != old_ids
        for m in new.members:
            assert m.name.encode() in members.out
        # The lease came along with its key.
        leases = kvorumctl([every, "lease", "list"])
        assert lease_hex.encode() in leases.out, leases
        # Writes work and continue the restored revisions.
        put = kvorumctl([every, "put", "after", "restore", "-w", "json"])
        assert put.rc == 0, put
        assert b'"revision":8' in put.out, put
        for m in new.members:
            got = kvorumctl([f"--endpoints={m.client_url}", "get", "after"])
            assert got.out == b"after\nrestore\n", (m.name, got)


def test_restore_checks_the_hash_and_leaves_nothing_behind(tmp_path: Path) -> None:
    snap = tmp_path / "kvorum.db"
    with _kvorum_cluster(1, tmp_path / "old") as old:
        ep = f"--endpoints={old.member(0).client_url}"
        assert kvorumctl([ep, "put", "k", "v"]).rc == 0
        assert etcdctl([ep, "snapshot", "save", str(snap)]).rc == 0  # etcdctl's file works too
    data = bytearray(snap.read_bytes())
    data[5000] ^= 0xFF
    corrupt = tmp_path / "corrupt.db"
    corrupt.write_bytes(bytes(data))
    target = tmp_path / "restored"
    got = kvorumctl(["snapshot", "restore", str(corrupt), "--data-dir", str(target)])
    assert got.rc == 1
    assert b"Error: expected sha256 [" in got.err, got
    assert not target.exists()
    # A bare copy (no hash) needs --skip-hash-check, as with etcdctl.
    bare = tmp_path / "bare.db"
    bare.write_bytes(snap.read_bytes()[:-32])
    got = kvorumctl(["snapshot", "restore", str(bare), "--data-dir", str(target)])
    assert got.err.endswith(b"Error: snapshot missing hash but --skip-hash-check=false\n"), got
    assert not target.exists()
    got = kvorumctl(
        ["snapshot", "restore", str(bare), "--data-dir", str(target), "--skip-hash-check"]
    )
    assert got.rc == 0, got
    assert (target / "member" / "snap" / "db").is_file()
    assert list((target / "member" / "wal").glob("*.wal"))


class _Terminal(io.BytesIO):
    def isatty(self) -> bool:
        return True


def test_save_draws_progress_only_on_a_terminal(etcd_ep: str, tmp_path: Path) -> None:
    plain = kvorumctl([etcd_ep, "snapshot", "save", str(tmp_path / "plain.db")])
    assert b"\r" not in plain.err
    out, err = io.BytesIO(), _Terminal()
    target = tmp_path / "tty.db"
    rc = run([etcd_ep, "snapshot", "save", str(target)], stdin=io.BytesIO(), stdout=out,
             stderr=err, environ={}, connector=_conn.connect)  # fmt: skip
    assert rc == 0 and out.getvalue() == f"Snapshot saved at {target}\n".encode()
    drawn = err.getvalue()
    assert b"\rsnapshot [" in drawn and b"\r\x1b[K" in drawn
    # Without the bar's frames, the terminal shows exactly the plain run's lines.
    frames = re.compile(rb"\rsnapshot \[[^\r]*|\r\x1b\[K")
    assert zap_mask(frames.sub(b"", drawn)) == zap_mask(plain.err).replace(b"plain.db", b"tty.db")
