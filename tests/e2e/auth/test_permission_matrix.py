"""The permission matrix: users with read, write, readwrite and no permission on a range run
every call inside and outside it; kvorum allows and refuses exactly what etcd 3.4 does.

The same script runs against a fresh 1-member etcd and a fresh 1-member kvorum (real etcdctl,
real processes); every step's exit code and output must be equal once run-specific values
(log timestamps, client ids, ports, lease ids) are masked. The protected range is the prefix
``/in/``; ``/out/`` is outside it. Each user gets its own lease, holding a key inside the range,
to revoke.
"""

from __future__ import annotations

import re
import shutil
import threading
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest

from kvorum.api.pb.etcdserverpb import rpc_pb2, rpc_pb2_grpc
from kvorum.testing import ETCD, ETCDCTL, Cluster, CtlResult, binary_for
from tests.e2e.auth.helpers import differences, masked

pytestmark = pytest.mark.skipif(
    shutil.which(ETCD) is None or shutil.which(ETCDCTL) is None,
    reason="etcd/etcdctl 3.4 not installed (run scripts/ensure-debian-packages)",
)

ROOT = "--user=root:rootpw"
#: role -> permission on the prefix /in/ (None: a role with no permission at all).
USERS = {"reader": "read", "writer": "write", "both": "readwrite", "nothing": None}
#: who runs the matrix: each user, a client without credentials, a wrong password.
CALLERS = [*(f"--user={name}:pw-{name}" for name in USERS), None, "--user=reader:wrong"]

_LEASE_ID = re.compile(r"lease ([0-9a-f]+) granted")
#: member ids (`member list` prints them unpadded: a random id has fewer than 16 digits one time
#: in 16, fewer than 14 one time in 4096) and lease ids (zero-padded to 16).
_HEX_ID = re.compile(r"\b[0-9a-f]{8,16}\b")
#: a lease's remaining TTL depends on when the call ran.
_REMAINING = re.compile(r"remaining\(\d+s\)")

#: no caller may take a snapshot; etcdctl creates the file's ".part" before it asks.
SNAPSHOT_PATH = "/tmp/kvorum-auth-matrix-snapshot.db"
TXN_WRITE_IN = 'value("/in/k") = "v"\n\nput /in/t v\n\nget /in/k\n\n'
TXN_WRITE_OUT = 'value("/in/k") = "v"\n\nput /out/t v\n\n\n'
TXN_READ_IN = 'value("/in/k") = "v"\n\nget /in/k\n\nget /in/a\n\n'
TXN_READ_OUT = 'value("/out/k") = "v"\n\nget /in/k\n\n\n'


def _matrix(lease_hex: str) -> list[tuple[tuple[str, ...], str]]:
    """(etcdctl arguments, stdin) of every call one caller makes."""
    return [
        (("get", "/in/k"), ""),
        (("get", "/out/k"), ""),
        (("get", "/in/", "--prefix"), ""),
        (("get", "/", "--prefix"), ""),
        (("get", "/in/k", "--consistency=s"), ""),
        (("put", "/in/p", "v"), ""),
        (("put", "/out/p", "v"), ""),
        (("put", "/in/p", "v2", "--prev-kv"), ""),
        (("del", "/in/p"), ""),
        (("del", "/out/p"), ""),
        (("del", "/in/", "--prefix", "--prev-kv"), ""),
        (("del", "/", "--prefix"), ""),
        (("txn",), TXN_WRITE_IN),
        (("txn",), TXN_WRITE_OUT),
        (("txn",), TXN_READ_IN),
        (("txn",), TXN_READ_OUT),
        (("lease", "grant", "60"), ""),
        (("lease", "timetolive", lease_hex, "--keys"), ""),
        (("lease", "list"), ""),
        (("lease", "revoke", lease_hex), ""),
        (("compaction", "1"), ""),
        (("member", "list"), ""),
        (("member", "add", "x", "--peer-urls=http://127.0.0.1:1"), ""),
        (("endpoint", "hashkv"), ""),
        (("alarm", "list"), ""),
        (("defrag",), ""),
        (("snapshot", "save", SNAPSHOT_PATH), ""),
        (("user", "list"), ""),
        (("role", "get", "reader"), ""),
    ]


def _ctl(cluster: Cluster, args: tuple[str, ...], stdin: str = "") -> CtlResult:
    return cluster.etcdctl(*args, stdin=stdin)


def _setup(cluster: Cluster) -> None:
    steps = [("user", "add", "root", "--new-user-password=rootpw")]
    for name, perm in USERS.items():
        steps += [
            ("user", "add", name, f"--new-user-password=pw-{name}"),
            ("role", "add", f"role-{name}"),
            ("user", "grant-role", name, f"role-{name}"),
        ]
        if perm is not None:
            steps.append(("role", "grant-permission", f"role-{name}", perm, "/in/", "--prefix"))
    steps += [("auth", "enable"), (ROOT, "put", "/in/k", "v"), (ROOT, "put", "/out/k", "v")]
    for args in steps:
        done = _ctl(cluster, args)
        assert done.returncode == 0, (args, done)


def _fresh_lease(cluster: Cluster) -> str:
    """A lease of root's holding /in/lk, for one caller to try to see and revoke."""
    granted = _ctl(cluster, (ROOT, "lease", "grant", "600"))
    match = _LEASE_ID.search(granted.stdout)
    assert match is not None, granted
    lease_hex = match.group(1)
    attached = _ctl(cluster, (ROOT, "put", "/in/lk", "v", f"--lease={lease_hex}"))
    assert attached.returncode == 0, attached
    return lease_hex


#: (key, range_end) of the watches each caller opens: inside, the whole prefix, outside, all.
WATCHES = [(b"/in/k", b""), (b"/in/", b"/in0"), (b"/out/k", b""), (b"", b"\0")]
RPC_TIMEOUT_S = 20.0


def _first_watch_response(
    url: str, user: str | None, key: bytes, range_end: bytes
) -> tuple[bool, bool, str]:
    """(created, canceled, cancel_reason) of the answer to one watch create, via gRPC."""
    channel = grpc.insecure_channel(url.removeprefix("http://"))
    answered = threading.Event()
    try:
        metadata: tuple[tuple[str, str], ...] = ()
        if user is not None:
            auth = rpc_pb2_grpc.AuthStub(channel)  # type: ignore[no-untyped-call]
            login = rpc_pb2.AuthenticateRequest(name=user, password=f"pw-{user}")
            metadata = (("token", auth.Authenticate(login, timeout=RPC_TIMEOUT_S).token),)
        create = rpc_pb2.WatchCreateRequest(key=key, range_end=range_end)

        def requests() -> Iterator[rpc_pb2.WatchRequest]:
            yield rpc_pb2.WatchRequest(create_request=create)
            answered.wait(RPC_TIMEOUT_S)  # keep the stream open until the answer is read

        watch = rpc_pb2_grpc.WatchStub(channel)  # type: ignore[no-untyped-call]
        call = watch.Watch(requests(), metadata=metadata, timeout=RPC_TIMEOUT_S)
        first = next(call)
        answered.set()
        call.cancel()
        return first.created, first.canceled, first.cancel_reason
    finally:
        answered.set()
        channel.close()


def _run_matrix(target: str, base_dir: Path) -> list[tuple[str, CtlResult]]:
    cluster = Cluster(binary_for(target), 1, base_dir=base_dir, extra_flags=["--bcrypt-cost=4"])
    cluster.start()
    results: list[tuple[str, CtlResult]] = []
    try:
        _setup(cluster)
        for caller in CALLERS:
            lease_hex = _fresh_lease(cluster)
            for args, stdin in _matrix(lease_hex):
                full = (caller, *args) if caller else args
                done = masked(_ctl(cluster, full, stdin))
                out = _REMAINING.sub("remaining(<s>)", _HEX_ID.sub("<id>", done.stdout))
                err = _HEX_ID.sub("<id>", done.stderr)
                label = f"{caller or 'no user'}: etcdctl {' '.join(args)}"
                results.append((label, CtlResult(done.returncode, out, err)))
        url = cluster.member(0).client_url
        for user in (*USERS, None):
            for key, range_end in WATCHES:
                answer = _first_watch_response(url, user, key, range_end)
                label = f"{user or 'no user'}: watch {key!r}..{range_end!r}"
                results.append((label, CtlResult(0, repr(answer), "")))
    finally:
        cluster.stop()
        for leftover in (SNAPSHOT_PATH, SNAPSHOT_PATH + ".part"):
            Path(leftover).unlink(missing_ok=True)
    return results


def test_every_call_is_allowed_or_refused_as_etcd_decides(tmp_path: Path) -> None:
    if shutil.which(binary_for("kvorum")[0]) is None:
        pytest.skip("kvorum is not installed in this environment")
    expected = _run_matrix("etcd", tmp_path / "etcd")
    got = _run_matrix("kvorum", tmp_path / "kvorum")
    mismatches = differences(expected, got)
    assert not mismatches, f"{len(mismatches)} differences:\n" + "\n".join(mismatches)
    # The matrix must hold both outcomes on the reference, or it checks nothing.
    denied = [label for label, r in expected if "permission denied" in r.stderr + r.stdout]
    allowed = [label for label, r in expected if r.returncode == 0]
    assert denied and allowed
