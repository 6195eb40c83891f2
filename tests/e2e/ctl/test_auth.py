"""``auth``, ``user`` and ``role``: kvorumctl against the real etcdctl 3.4 on one real etcd.

Auth changes do not move the store's revision, so each step runs etcdctl, puts the state back
(``undo``, with etcdctl), then runs kvorumctl, and the two must print the same bytes (log line
timestamps and client ids masked). kvorum has no auth yet (issue 8): these run on etcd only.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import pytest

from kvorum.testing import ETCD, ETCDCTL, Cluster
from tests.e2e.ctl.helpers import etcdctl, kvorumctl, mask

pytestmark = pytest.mark.skipif(
    shutil.which(ETCD) is None or shutil.which(ETCDCTL) is None,
    reason="etcd/etcdctl 3.4 not installed (run scripts/ensure-debian-packages)",
)

ROOT = "--user=root:pw"
TEXT_FORMATS = ("simple", "json", "fields")


@dataclass(frozen=True, slots=True)
class Step:
    args: Sequence[str]
    undo: Sequence[Sequence[str]] = ()
    stdin: bytes = b""


def _same(ep: str, step: Step) -> None:
    a = etcdctl([ep, *step.args], step.stdin)
    for undo in step.undo:
        done = etcdctl([ep, *undo])
        assert done.rc == 0, (undo, done)
    b = kvorumctl([ep, *step.args], step.stdin)
    assert (b.rc, b.out, mask(b.err)) == (a.rc, a.out, mask(a.err)), (
        f"{step.args}:\netcdctl:   {a}\nkvorumctl: {b}"
    )


@pytest.fixture
def ep(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    # Its own cluster: with auth on, every other case would need credentials.
    cluster = Cluster(ETCD, 1, base_dir=tmp_path_factory.mktemp("ctl-auth"))
    cluster.start()
    try:
        yield f"--endpoints={cluster.member(0).client_url}"
    finally:
        cluster.stop()


READS = [
    ["user", "get", "alice"],
    ["user", "get", "alice", "--detail"],
    ["user", "list"],
    ["role", "get", "rw"],
    ["role", "list"],
]
# protobuf prints the raw response; table refuses every auth response (after the call).
BINARY_AND_TABLE = [
    (["user", "get", "alice"], "protobuf"),
    (["role", "get", "rw"], "protobuf"),
    (["user", "list"], "table"),
    (["user", "get", "alice", "--detail"], "table"),
]


def test_auth_scenario(ep: str) -> None:
    """Root user and role, auth on, a user with readwrite on a prefix allowed and denied,
    passwords from flags, stdin and prompts, permissions and roles revoked, auth off."""
    steps = [
        Step(["auth", "enable"]),  # no root user yet
        Step(["user", "add", "root:pw"], [["user", "delete", "root"]]),
        Step(["user", "add", "root:pw"]),
        # No root role: etcdctl creates and grants it, then enables.
        Step(["auth", "enable"], [[ROOT, "auth", "disable"], ["role", "delete", "root"]]),
        Step(["user", "list"]),  # no credentials
        Step([ROOT, "user", "add", "alice", "--new-user-password=apw"],
             [[ROOT, "user", "delete", "alice"]]),
        Step([ROOT, "user", "add", ":x"]),
        Step([ROOT, "user", "add", "bob", "--interactive=false"], [[ROOT, "user", "delete", "bob"]],
             b"  bobpw rest\n"),
        Step([ROOT, "user", "add", "carol"], [[ROOT, "user", "delete", "carol"]], b"cpw\ncpw\n"),
        Step([ROOT, "user", "add", "dave"], (), b"one\ntwo\n"),
        Step([ROOT, "user", "add", "erin"], (), b"\n"),
        Step([ROOT, "user", "add", "frank", "--no-password"], [[ROOT, "user", "delete", "frank"]]),
        Step([ROOT, "role", "add", "rw"], [[ROOT, "role", "delete", "rw"]]),
        Step([ROOT, "role", "add", "rw"]),
        Step([ROOT, "role", "grant-permission", "rw", "readwrite", "app/", "--prefix"]),
        Step([ROOT, "role", "grant-permission", "rw", "READ", "cfg"]),
        Step([ROOT, "role", "grant-permission", "rw", "write", "w1", "w5"]),
        Step([ROOT, "role", "grant-permission", "rw", "read", "", "--from-key"]),
        Step([ROOT, "role", "grant-permission", "rw", "bogus", "k"]),
        Step([ROOT, "role", "grant-permission", "rw", "read", "a", "b", "--prefix"]),
        Step([ROOT, "user", "grant-role", "alice", "rw"],
             [[ROOT, "user", "revoke-role", "alice", "rw"]]),
        Step([ROOT, "user", "grant-role", "alice", "nope"]),
        *[Step([ROOT, *r, "-w", f]) for r in READS for f in TEXT_FORMATS],
        *[Step([ROOT, *r, "-w", f]) for r, f in BINARY_AND_TABLE],
        Step([ROOT, "user", "get", "nobody"]),
        Step(["--user=alice:apw", "get", "app/x"]),
        Step(["--user=alice:apw", "get", "cfg"]),
        Step(["--user=alice:apw", "put", "other", "v"]),
        Step(["--user=alice:apw", "user", "list"]),
        Step(["--user=alice:bad", "get", "app/x"]),
        Step(["get", "app/x"]),
        Step(["--user=root", "get", "app/x"], (), b"pw\n"),
        Step(["--user=alice", "--password=apw", "get", "app/x", "-w", "json"]),
        Step([ROOT, "user", "passwd", "alice", "--interactive=false"], (), b"apw2\n"),
        Step([ROOT, "user", "passwd", "alice"], (), b"apw\napw\n"),
        Step([ROOT, "role", "revoke-permission", "rw", "cfg"],
             [[ROOT, "role", "grant-permission", "rw", "read", "cfg"]]),
        Step([ROOT, "role", "revoke-permission", "rw", "cfg"]),
        Step([ROOT, "role", "revoke-permission", "rw", "w1", "w5", "-w", "json"],
             [[ROOT, "role", "grant-permission", "rw", "write", "w1", "w5"]]),
        Step([ROOT, "role", "revoke-permission", "rw", "", "--from-key", "-w", "fields"],
             [[ROOT, "role", "grant-permission", "rw", "read", "", "--from-key"]]),
        Step([ROOT, "role", "revoke-permission", "rw", "app/", "--prefix"],
             [[ROOT, "role", "grant-permission", "rw", "readwrite", "app/", "--prefix"]]),
        Step([ROOT, "user", "revoke-role", "alice", "rw", "-w", "protobuf"],
             [[ROOT, "user", "grant-role", "alice", "rw"]]),
        Step([ROOT, "user", "revoke-role", "alice", "rw"]),
        Step([ROOT, "role", "delete", "rw", "-w", "json"], [[ROOT, "role", "add", "rw"]]),
        Step([ROOT, "user", "delete", "alice"],
             [[ROOT, "user", "add", "alice", "--new-user-password=x"]]),
        Step([ROOT, "user", "delete", "alice"]),
        Step([ROOT, "auth", "disable"], [[ROOT, "auth", "enable"]]),
        Step(["auth", "disable"]),
    ]  # fmt: skip
    for step in steps:
        _same(ep, step)
    # Writes move the revision: compared in the simple format, which does not show it.
    for args in ([ROOT, "auth", "enable"], ["--user=root:pw", "put", "app/x", "1"]):
        assert etcdctl([ep, *args]).rc == 0
    _same(ep, Step([ROOT, "put", "app/y", "2"]))
    _same(ep, Step([ROOT, "auth", "disable"], [[ROOT, "auth", "enable"]]))


@pytest.mark.parametrize(
    "case",
    [
        ["auth", "enable", "x"],
        ["auth", "disable", "x"],
        ["auth", "status"],
        ["user", "add"],
        ["user", "add", "a", "b"],
        ["user", "add", ":pw"],
        ["user", "delete"],
        ["user", "get"],
        ["user", "list", "x"],
        ["user", "passwd"],
        ["user", "grant-role", "a"],
        ["user", "revoke-role", "a"],
        ["role", "add"],
        ["role", "delete", "a", "b"],
        ["role", "get"],
        ["role", "list", "x"],
        ["role", "grant-permission", "r", "read"],
        ["role", "grant-permission", "r", "rw", "k"],
        ["role", "grant-permission", "r", "read", "k", "--prefix", "--from-key"],
        ["role", "grant-permission", "r", "read", "k", "z", "--from-key"],
        ["role", "grant-permission", "r", "read", "", "--prefix", "--from-key"],
        ["role", "revoke-permission", "r"],
        ["role", "revoke-permission", "r", "k", "z", "--prefix"],
        ["user", "get", "--help"],
        ["role", "revoke-permission", "--help"],
        ["user", "passwd", "--help"],
        ["auth", "--help"],
        ["role"],
        ["user", "add", "x:y", "-w", "bogus"],
    ],
    ids=" ".join,
)
def test_usage_and_argument_errors(case: list[str]) -> None:
    """Rejected before any call: no server needed (the endpoint is never dialled)."""
    ep = "--endpoints=127.0.0.1:1"
    a, b = etcdctl([ep, *case]), kvorumctl([ep, *case])
    assert (b.rc, b.out, mask(b.err)) == (a.rc, a.out, mask(a.err))
