"""The real etcdctl 3.4 against the real servicers over the standalone (raft-less) member.

The servicers run in-process on 127.0.0.1 (`tests/unit/apisvc/standalone.py`); each test runs
`/usr/bin/etcdctl` (API v3) and checks what it printed: values, revisions, JSON fields,
etcd's error texts, and a snapshot that is a valid copy of the backend.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from kvorum.backend import Backend
from kvorum.mvcc import MvccStore, RangeRequest
from tests.unit.apisvc.standalone import StandaloneServer

ETCDCTL = "/usr/bin/etcdctl"
ETCDCTL_TIMEOUT_S = 20.0

pytestmark = pytest.mark.skipif(shutil.which(ETCDCTL) is None, reason="etcdctl not installed")


class Ctl:
    def __init__(self, endpoint: str) -> None:
        self.endpoint = endpoint
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("ETCDCTL_")}
        self.env["ETCDCTL_API"] = "3"

    def run(self, *args: str, stdin: bytes = b"") -> subprocess.CompletedProcess[str]:
        done = subprocess.run(
            [ETCDCTL, f"--endpoints={self.endpoint}", *args],
            input=stdin,
            capture_output=True,
            env=self.env,
            timeout=ETCDCTL_TIMEOUT_S,
            check=False,
        )
        return subprocess.CompletedProcess(
            done.args, done.returncode, done.stdout.decode(), done.stderr.decode()
        )

    def ok(self, *args: str, stdin: bytes = b"") -> str:
        done = self.run(*args, stdin=stdin)
        assert done.returncode == 0, done.stderr
        return done.stdout

    def json(self, *args: str, stdin: bytes = b"") -> Any:
        return json.loads(self.ok(*args, "-w", "json", stdin=stdin))

    def error(self, *args: str, stdin: bytes = b"") -> str:
        """The last line etcdctl printed on stderr (its "Error: ..." line); exit code 1."""
        done = self.run(*args, stdin=stdin)
        assert done.returncode == 1, done.stdout
        return done.stderr.strip().splitlines()[-1]


@pytest.fixture
def server(tmp_path: Path) -> Iterator[StandaloneServer]:
    with StandaloneServer(tmp_path / "member") as srv:
        yield srv


@pytest.fixture
def ctl(server: StandaloneServer) -> Ctl:
    return Ctl(server.endpoint)


def b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode()


def test_put_get_del_with_flags(ctl: Ctl) -> None:
    assert ctl.ok("put", "foo", "bar") == "OK\n"
    assert ctl.ok("put", "foo", "baz", "--prev-kv") == "OK\nfoo\nbar\n"
    ctl.ok("put", "foo2", "two")
    ctl.ok("put", "fop", "three")
    assert ctl.ok("get", "foo") == "foo\nbaz\n"
    assert ctl.ok("get", "foo", "--prefix", "--keys-only") == "foo\n\nfoo2\n\n"
    assert ctl.ok("get", "foo", "--prefix", "--print-value-only") == "baz\ntwo\n"
    assert ctl.ok("get", "foo", "fop", "--print-value-only") == "baz\ntwo\n"
    assert ctl.ok("get", "f", "--from-key", "--limit=2", "--print-value-only") == "baz\ntwo\n"
    assert '"Count" : 3' in ctl.ok("get", "f", "--prefix", "--limit=1", "-w", "fields")
    desc = ctl.ok("get", "f", "--prefix", "--sort-by=MODIFY", "--order=DESCEND", "--keys-only")
    assert desc.split() == ["fop", "foo2", "foo"]
    assert ctl.ok("get", "foo", "--rev=2") == "foo\nbar\n"
    got = ctl.json("get", "foo")
    assert got["header"]["revision"] == 5
    assert got["kvs"] == [
        {
            "key": b64(b"foo"),
            "create_revision": 2,
            "mod_revision": 3,
            "version": 2,
            "value": b64(b"baz"),
        }
    ]
    assert got["count"] == 1
    assert ctl.ok("del", "foo", "--prefix", "--prev-kv") == "2\nfoo\nbaz\nfoo2\ntwo\n"
    assert ctl.ok("del", "nothing") == "0\n"
    assert ctl.ok("get", "f", "--prefix", "--print-value-only") == "three\n"
    dele = ctl.json("del", "fop")
    assert (dele["deleted"], dele["header"]["revision"]) == (1, 7)


def test_txn_from_stdin(ctl: Ctl) -> None:
    ctl.ok("put", "k1", "v1")
    script = b'value("k1") = "v1"\n\nput k1 ok\nget k1\n\nput k1 failed\n\n'
    assert ctl.ok("txn", stdin=script) == "SUCCESS\n\nOK\n\nk1\nok\n"
    resp = ctl.json("txn", stdin=b'version("k1") = "99"\n\nput never x\n\nget k1\n\n')
    assert "succeeded" not in resp  # false, which etcdctl's JSON leaves out
    rng = resp["responses"][0]["Response"]["ResponseRange"]
    assert rng["header"] == {"revision": 3}
    assert rng["kvs"][0]["value"] == b64(b"ok")
    assert ctl.ok("get", "never") == ""


def test_compaction(ctl: Ctl) -> None:
    for i in range(5):
        ctl.ok("put", "k", f"v{i}")  # revisions 2..6
    assert ctl.ok("compaction", "4") == "compacted revision 4\n"
    assert ctl.ok("get", "k", "--rev=4", "--print-value-only") == "v2\n"
    assert ctl.error("get", "k", "--rev=3") == (
        "Error: etcdserver: mvcc: required revision has been compacted"
    )
    assert ctl.ok("compaction", "--physical", "6") == "compacted revision 6\n"
    assert ctl.json("endpoint", "hashkv")[0]["HashKV"]["compact_revision"] == 6


def test_errors(ctl: Ctl) -> None:
    assert ctl.error("put", "", "v") == "Error: etcdserver: key is not provided"
    assert ctl.error("get", "") == "Error: etcdserver: key is not provided"
    ops = "".join(f"put x{i} v\n" for i in range(129)).encode()
    assert ctl.error("txn", stdin=b"\n" + ops + b"\n\n") == (
        "Error: etcdserver: too many operations in txn request"
    )
    dup = b"\nput a 1\nput a 2\n\n\n"
    assert ctl.error("txn", stdin=dup) == "Error: etcdserver: duplicate key given in txn request"
    assert ctl.error("get", "a", "--rev=50") == (
        "Error: etcdserver: mvcc: required revision is a future revision"
    )
    assert ctl.error("put", "big", stdin=b"x" * 1_600_000) == (
        "Error: etcdserver: request is too large"
    )
    # etcdctl refuses to send 2 MiB itself (gRPC's client-side cap), as against etcd.
    assert "larger than max" in ctl.error("put", "huge", stdin=b"x" * (2 * 1024 * 1024))
    assert ctl.error("put", "k", "--ignore-value") == "Error: etcdserver: key not found"
    assert ctl.error("member", "remove", "1234") == "Error: etcdserver: member not found"
    # Nothing got written by any of it.
    assert ctl.json("get", "", "--from-key")["header"]["revision"] == 1


def test_member_list_and_endpoint_status(server: StandaloneServer, ctl: Ctl) -> None:
    assert server.member is not None
    mid = server.member.member_id
    members = ctl.json("member", "list")
    assert members["header"]["member_id"] == mid
    assert "revision" not in members["header"]
    assert members["members"] == [
        {
            "ID": mid,
            "name": "default",
            "peerURLs": ["http://localhost:2380"],
            "clientURLs": [server.endpoint],
        }
    ]
    assert ctl.ok("member", "list") == (
        f"{mid:x}, started, default, http://localhost:2380, {server.endpoint}, false\n"
    )
    ctl.ok("put", "a", "1")
    (status,) = ctl.json("endpoint", "status")
    assert status["Endpoint"] == server.endpoint
    st = status["Status"]
    assert st["version"] == "3.4.23"
    assert st["leader"] == mid
    assert st["raftTerm"] == 1
    assert st["header"]["revision"] == 2
    assert 0 < st["dbSizeInUse"] <= st["dbSize"]
    hashkv = ctl.json("endpoint", "hashkv")
    assert hashkv[0]["HashKV"]["header"]["revision"] == 2
    assert isinstance(hashkv[0]["HashKV"]["hash"], int)
    assert ctl.ok("defrag") == f"Finished defragmenting etcd member[{server.endpoint}]\n"
    assert ctl.ok("get", "a", "--print-value-only") == "1\n"
    assert ctl.ok("alarm", "list") == ""


def test_snapshot_save_is_a_backend_copy(tmp_path: Path, ctl: Ctl) -> None:
    for i in range(50):
        ctl.ok("put", f"key{i:02d}", "v" * 500)
    path = tmp_path / "snap.db"
    assert f"Snapshot saved at {path}" in ctl.ok("snapshot", "save", str(path))
    raw = path.read_bytes()
    # Like etcd's, the stream ends with the sha256 of the database, which etcdctl keeps.
    data, digest = raw[:-32], raw[-32:]
    assert hashlib.sha256(data).digest() == digest
    copy = tmp_path / "copy.db"
    copy.write_bytes(data)
    backend = Backend(str(copy))
    try:
        store = MvccStore(backend)
        assert store.current_revision == 51
        resp = store.range(RangeRequest(b"key", b"kez"))
        assert resp.count == 50
        assert resp.kvs[0].value == b"v" * 500
    finally:
        backend.close()
