"""Users, roles and auth enable/disable driven by the real etcdctl: kvorum prints what etcd does.

One script of etcdctl commands runs against a fresh 1-member etcd 3.4 and a fresh 1-member
kvorum; every step's exit code, stdout and stderr must be equal. The script covers each
management command's success and its errors (duplicates, unknown names, grants that are not
there, root's protections while auth is on, missing and wrong credentials).
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from kvorum.testing import ETCD, ETCDCTL, Cluster, CtlResult, binary_for
from tests.e2e.auth.helpers import masked

pytestmark = pytest.mark.skipif(
    shutil.which(ETCD) is None or shutil.which(ETCDCTL) is None,
    reason="etcd/etcdctl 3.4 not installed (run scripts/ensure-debian-packages)",
)

ROOT = "--user=root:rootpw"

#: (etcdctl arguments, stdin). Low bcrypt cost: the script authenticates many times.
SCRIPT: list[tuple[tuple[str, ...], str]] = [
    (("user", "list"), ""),
    (("auth", "disable"), ""),
    (("user", "add", "root", "--new-user-password=rootpw"), ""),
    (("user", "add", "root", "--new-user-password=again"), ""),
    (("user", "add", "alice", "--new-user-password=alicepw"), ""),
    (("user", "add", "bob:bobpw"), ""),
    (("user", "add", "carol", "--interactive=false"), "carolpw\n"),
    (("user", "add", "nopw", "--no-password"), ""),
    (("user", "list"), ""),
    (("user", "get", "alice"), ""),
    (("user", "get", "nobody"), ""),
    (("role", "add", "reader"), ""),
    (("role", "add", "writer"), ""),
    (("role", "add", "reader"), ""),
    (("role", "list"), ""),
    (("role", "grant-permission", "reader", "read", "/a/", "--prefix"), ""),
    (("role", "grant-permission", "writer", "readwrite", "k1"), ""),
    (("role", "grant-permission", "writer", "write", "k2", "k5"), ""),
    (("role", "grant-permission", "writer", "read", "x", "--from-key"), ""),
    (("role", "grant-permission", "writer", "write", "k1"), ""),
    (("role", "grant-permission", "nosuch", "read", "k"), ""),
    (("role", "get", "reader"), ""),
    (("role", "get", "writer"), ""),
    (("role", "get", "nosuch"), ""),
    (("user", "grant-role", "alice", "reader"), ""),
    (("user", "grant-role", "alice", "writer"), ""),
    (("user", "grant-role", "alice", "writer"), ""),
    (("user", "grant-role", "alice", "nosuch"), ""),
    (("user", "grant-role", "nobody", "reader"), ""),
    (("user", "get", "alice"), ""),
    (("user", "get", "alice", "--detail"), ""),
    (("role", "revoke-permission", "writer", "k2", "k5"), ""),
    (("role", "revoke-permission", "writer", "k2", "k5"), ""),
    (("role", "revoke-permission", "nosuch", "k2"), ""),
    (("role", "get", "writer"), ""),
    (("user", "revoke-role", "alice", "writer"), ""),
    (("user", "revoke-role", "alice", "writer"), ""),
    (("user", "revoke-role", "nobody", "writer"), ""),
    (("role", "add", "temp"), ""),
    (("user", "grant-role", "bob", "temp"), ""),
    (("role", "delete", "temp"), ""),
    (("role", "delete", "temp"), ""),
    (("user", "get", "bob"), ""),
    (("user", "passwd", "carol", "--interactive=false"), "newcarol\n"),
    (("user", "passwd", "nobody", "--interactive=false"), "x\n"),
    (("auth", "enable"), ""),
    (("auth", "enable"), ""),
    (("role", "get", "root"), ""),
    (("user", "get", "root"), ""),
    (("user", "list"), ""),
    ((ROOT, "user", "list"), ""),
    ((ROOT, "role", "list"), ""),
    (("--user=alice:alicepw", "user", "list"), ""),
    (("--user=alice:wrong", "user", "list"), ""),
    (("--user=nobody:pw", "role", "list"), ""),
    (("--user=carol:carolpw", "user", "list"), ""),
    (("--user=carol:newcarol", "role", "get", "reader"), ""),
    (("--user=alice:alicepw", "role", "add", "sneaky"), ""),
    (("--user=alice:alicepw", "auth", "disable"), ""),
    ((ROOT, "user", "delete", "root"), ""),
    ((ROOT, "user", "revoke-role", "root", "root"), ""),
    ((ROOT, "role", "delete", "root"), ""),
    ((ROOT, "user", "add", "dave", "--new-user-password=davepw"), ""),
    ((ROOT, "user", "grant-role", "dave", "root"), ""),
    (("--user=dave:davepw", "user", "get", "dave"), ""),
    ((ROOT, "user", "delete", "alice"), ""),
    ((ROOT, "user", "delete", "alice"), ""),
    ((ROOT, "auth", "disable"), ""),
    (("auth", "disable"), ""),
    (("user", "list"), ""),
    (("user", "revoke-role", "root", "root"), ""),
    (("auth", "enable"), ""),
    (("role", "delete", "root"), ""),
    (("user", "delete", "root"), ""),
    (("auth", "enable"), ""),
    (("user", "list"), ""),
]


def _run_script(target: str, base_dir: Path) -> list[CtlResult]:
    cluster = Cluster(binary_for(target), 1, base_dir=base_dir, extra_flags=["--bcrypt-cost=4"])
    cluster.start()
    try:
        return [masked(cluster.etcdctl(*args, stdin=stdin)) for args, stdin in SCRIPT]
    finally:
        cluster.stop()


def test_management_commands_print_what_etcd_prints(tmp_path: Path) -> None:
    if shutil.which(binary_for("kvorum")[0]) is None:
        pytest.skip("kvorum is not installed in this environment")
    expected = _run_script("etcd", tmp_path / "etcd")
    got = _run_script("kvorum", tmp_path / "kvorum")
    mismatches = [
        f"step {i} etcdctl {' '.join(args)}:\n  etcd:   {want}\n  kvorum: {have}"
        for i, ((args, _), want, have) in enumerate(zip(SCRIPT, expected, got, strict=True))
        if want != have
    ]
    assert not mismatches, "\n".join(mismatches)
    # The script must have exercised failures as well as successes on the reference.
    assert {0, 1, 2} <= {r.returncode for r in expected}
