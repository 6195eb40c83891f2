"""Two corners of etcd 3.4's auth, run against etcd and kvorum with equal results:

* Lock and Election act with the caller's token (etcd serves them through an in-process
  client carrying it): their reads (Election.Leader, the lock's queue) need read permission and
  their writes write permission on the name's prefix; a caller without them is refused with
  etcd's texts, sent as code UNKNOWN.
* A permission granted on the empty key (a raw RoleGrantPermission; etcdctl never sends one)
  covers nothing, with or without a range end: etcd's interval tree reads an empty key as
  past every key.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import grpc
import pytest

from kvorum.api.pb.authpb import auth_pb2
from kvorum.api.pb.etcdserverpb import rpc_pb2, rpc_pb2_grpc
from kvorum.api.pb.v3electionpb import v3election_pb2, v3election_pb2_grpc
from kvorum.api.pb.v3lockpb import v3lock_pb2, v3lock_pb2_grpc
from kvorum.testing import ETCD, ETCDCTL, Cluster, binary_for
from tests.e2e.auth.helpers import differences

pytestmark = pytest.mark.skipif(
    shutil.which(ETCD) is None or shutil.which(ETCDCTL) is None,
    reason="etcd/etcdctl 3.4 not installed (run scripts/ensure-debian-packages)",
)

RPC_TIMEOUT_S = 15.0
ROOT = "--user=root:rootpw"
#: user -> etcdctl role grant on /in/ (None: no permission).
PREFIX_USERS = {"reader": "read", "both": "readwrite", "nothing": None}
#: user -> (key, range_end) of a raw readwrite grant on the empty key.
EMPTY_KEY_USERS = {"empty-from": (b"", b"\0"), "empty-point": (b"", b""), "empty-to": (b"", b"/z")}

Outcome = tuple[str, str]


def _outcome(call: object) -> Outcome:
    try:
        result = call() if callable(call) else call
    except grpc.RpcError as exc:
        return exc.code().name, exc.details() or ""
    return "OK", str(result)


def _setup(cluster: Cluster, channel: grpc.Channel) -> None:
    steps: list[tuple[str, ...]] = [("user", "add", "root", "--new-user-password=rootpw")]
    for name, perm in PREFIX_USERS.items():
        steps += [
            ("user", "add", name, f"--new-user-password=pw-{name}"),
            ("role", "add", f"role-{name}"),
            ("user", "grant-role", name, f"role-{name}"),
        ]
        if perm is not None:
            steps.append(("role", "grant-permission", f"role-{name}", perm, "/in/", "--prefix"))
    for name in EMPTY_KEY_USERS:
        steps += [
            ("user", "add", name, f"--new-user-password=pw-{name}"),
            ("role", "add", f"role-{name}"),
            ("user", "grant-role", name, f"role-{name}"),
        ]
    steps += [("auth", "enable"), (ROOT, "put", "/in/k", "v"), (ROOT, "put", "/out/k", "v")]
    for args in steps:
        done = cluster.etcdctl(*args)
        assert done.returncode == 0, (args, done)
    root = (("token", _login(channel, "root", "rootpw")),)
    auth = rpc_pb2_grpc.AuthStub(channel)  # type: ignore[no-untyped-call]
    for name, (key, range_end) in EMPTY_KEY_USERS.items():
        perm = auth_pb2.Permission(
            permType=auth_pb2.Permission.READWRITE, key=key, range_end=range_end
        )
        auth.RoleGrantPermission(
            rpc_pb2.AuthRoleGrantPermissionRequest(name=f"role-{name}", perm=perm),
            metadata=root,
            timeout=RPC_TIMEOUT_S,
        )


def _login(channel: grpc.Channel, name: str, password: str) -> str:
    auth = rpc_pb2_grpc.AuthStub(channel)  # type: ignore[no-untyped-call]
    login = rpc_pb2.AuthenticateRequest(name=name, password=password)
    token: str = auth.Authenticate(login, timeout=RPC_TIMEOUT_S).token
    return token


def _run(target: str, base_dir: Path) -> list[tuple[str, Outcome]]:
    cluster = Cluster(binary_for(target), 1, base_dir=base_dir, extra_flags=["--bcrypt-cost=4"])
    cluster.start()
    channel = grpc.insecure_channel(cluster.member(0).client_url.removeprefix("http://"))
    results: list[tuple[str, Outcome]] = []
    try:
        _setup(cluster, channel)
        kv = rpc_pb2_grpc.KVStub(channel)  # type: ignore[no-untyped-call]
        lock = v3lock_pb2_grpc.LockStub(channel)  # type: ignore[no-untyped-call]
        election = v3election_pb2_grpc.ElectionStub(channel)  # type: ignore[no-untyped-call]
        lease = rpc_pb2_grpc.LeaseStub(channel)  # type: ignore[no-untyped-call]
        root = (("token", _login(channel, "root", "rootpw")),)
        # A leader for /in/e, so Leader has one to show to whoever may read it.
        root_lease = lease.LeaseGrant(
            rpc_pb2.LeaseGrantRequest(TTL=60), metadata=root, timeout=RPC_TIMEOUT_S
        )
        election.Campaign(
            v3election_pb2.CampaignRequest(name=b"/in/e", lease=root_lease.ID, value=b"root"),
            metadata=root,
            timeout=RPC_TIMEOUT_S,
        )
        for name in PREFIX_USERS:
            who = (("token", _login(channel, name, f"pw-{name}")),)

            def leader(who: tuple[tuple[str, str], ...] = who) -> bytes:
                resp = election.Leader(
                    v3election_pb2.LeaderRequest(name=b"/in/e"), metadata=who, timeout=RPC_TIMEOUT_S
                )
                return bytes(resp.kv.value)

            def lock_and_unlock(who: tuple[tuple[str, str], ...] = who) -> bool:
                held = lock.Lock(
                    v3lock_pb2.LockRequest(name=b"/in/l"), metadata=who, timeout=RPC_TIMEOUT_S
                )
                lock.Unlock(
                    v3lock_pb2.UnlockRequest(key=held.key), metadata=who, timeout=RPC_TIMEOUT_S
                )
                return held.key.startswith(b"/in/l/")

            def no_leader(who: tuple[tuple[str, str], ...] = who) -> bytes:
                resp = election.Leader(
                    v3election_pb2.LeaderRequest(name=b"/in/none"),
                    metadata=who,
                    timeout=RPC_TIMEOUT_S,
                )
                return bytes(resp.kv.value)

            results += [
                (f"{name}: Election.Leader /in/e", _outcome(leader)),
                (f"{name}: Election.Leader /in/none", _outcome(no_leader)),
                (f"{name}: Lock+Unlock /in/l", _outcome(lock_and_unlock)),
            ]
        results.append(
            ("bogus token: Election.Leader", _outcome(lambda: election.Leader(
                v3election_pb2.LeaderRequest(name=b"/in/e"),
                metadata=(("token", "bogus.1"),), timeout=RPC_TIMEOUT_S,
            ).kv.value))
        )  # fmt: skip
        for name in EMPTY_KEY_USERS:
            who = (("token", _login(channel, name, f"pw-{name}")),)
            for key in (b"/in/k", b"/out/k", b"\0"):
                results.append(
                    (
                        f"{name}: Range {key!r}",
                        _outcome(lambda key=key, who=who: len(kv.Range(
                            rpc_pb2.RangeRequest(key=key), metadata=who, timeout=RPC_TIMEOUT_S
                        ).kvs)),
                    )
                )  # fmt: skip
            results.append(
                (
                    f"{name}: Put /out/p",
                    _outcome(lambda who=who: kv.Put(
                        rpc_pb2.PutRequest(key=b"/out/p", value=b"v"),
                        metadata=who, timeout=RPC_TIMEOUT_S,
                    ).header.revision > 0),
                )
            )  # fmt: skip
    finally:
        channel.close()
        cluster.stop()
    return results


def test_lock_election_and_empty_key_permissions_as_etcd(tmp_path: Path) -> None:
    if shutil.which(binary_for("kvorum")[0]) is None:
        pytest.skip("kvorum is not installed in this environment")
    expected = _run("etcd", tmp_path / "etcd")
    got = _run("kvorum", tmp_path / "kvorum")
    mismatches = differences(expected, got)
    assert not mismatches, f"{len(mismatches)} differences:\n" + "\n".join(mismatches)
    # The reference must both allow and refuse, or the comparison checks nothing.
    outcomes = {label: outcome for label, outcome in expected}
    assert outcomes["both: Lock+Unlock /in/l"] == ("OK", "True")
    assert outcomes["reader: Election.Leader /in/e"] == ("OK", "b'root'")
    assert outcomes["nothing: Election.Leader /in/e"][0] != "OK"
    assert all(o[0] != "OK" for label, o in outcomes.items() if label.startswith("empty-"))
