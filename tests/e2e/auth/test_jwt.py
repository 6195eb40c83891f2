"""`--auth-token jwt,...` end to end, beside etcd 3.4 with the same keys (made at test time).

* One member each, RS256: etcdctl `--user` works on both with equal output; the tokens have
  the same header and claim names (and, auth histories being equal, the same revision); a
  token issued by etcd is accepted by kvorum and one issued by kvorum by etcd -- the proof
  that kvorum's tokens are etcd's.
* Three members, ES256: a token from member 0 is accepted by members 1 and 2 at once (a JWT
  needs no raft entry on the member checking it); once the auth state changes it is refused
  everywhere with "revision of auth store is old", as etcd refuses it.
* A start with unusable options fails with etcd's text.
"""

from __future__ import annotations

import base64
import json
import shutil
import subprocess
import time
from pathlib import Path

import grpc
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from kvorum.api.pb.etcdserverpb import rpc_pb2, rpc_pb2_grpc
from kvorum.testing import ETCD, ETCDCTL, Cluster, binary_for, free_ports
from tests.e2e.auth.helpers import masked

pytestmark = pytest.mark.skipif(
    shutil.which(ETCD) is None or shutil.which(ETCDCTL) is None,
    reason="etcd/etcdctl 3.4 not installed (run scripts/ensure-debian-packages)",
)

RPC_TIMEOUT_S = 20.0
ROOT = "--user=root:rootpw"


def _write_keys(directory: Path, kind: str) -> tuple[Path, Path]:
    private_key = (
        rsa.generate_private_key(public_exponent=65537, key_size=2048)
        if kind == "rsa"
        else ec.generate_private_key(ec.SECP256R1())
    )
    private, public = directory / f"{kind}.key", directory / f"{kind}.pub"
    private.write_bytes(
        private_key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    public.write_bytes(
        private_key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )
    return private, public


def _channel(cluster: Cluster, index: int = 0) -> grpc.Channel:
    return grpc.insecure_channel(cluster.member(index).client_url.removeprefix("http://"))


def _login(channel: grpc.Channel, name: str = "root", password: str = "rootpw") -> str:
    auth = rpc_pb2_grpc.AuthStub(channel)  # type: ignore[no-untyped-call]
    login = rpc_pb2.AuthenticateRequest(name=name, password=password)
    token: str = auth.Authenticate(login, timeout=RPC_TIMEOUT_S).token
    return token


def _get(channel: grpc.Channel, token: str, key: bytes = b"/k") -> bytes:
    kv = rpc_pb2_grpc.KVStub(channel)  # type: ignore[no-untyped-call]
    resp = kv.Range(
        rpc_pb2.RangeRequest(key=key), metadata=(("token", token),), timeout=RPC_TIMEOUT_S
    )
    return bytes(resp.kvs[0].value) if resp.kvs else b""


def _decoded(token: str) -> tuple[dict[str, object], dict[str, object]]:
    def part(text: str) -> dict[str, object]:
        value: dict[str, object] = json.loads(
            base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
        )
        return value

    header, claims, _ = token.split(".")
    return part(header), part(claims)


def _enable_auth(cluster: Cluster) -> None:
    for args in (
        ("user", "add", "root", "--new-user-password=rootpw"),
        ("auth", "enable"),
        (ROOT, "put", "/k", "v"),
    ):
        done = cluster.etcdctl(*args, endpoint=0)
        assert done.returncode == 0, (args, done)


def test_kvorum_and_etcd_tokens_are_interchangeable(tmp_path: Path) -> None:
    if shutil.which(binary_for("kvorum")[0]) is None:
        pytest.skip("kvorum is not installed in this environment")
    private, public = _write_keys(tmp_path, "rsa")
    flag = f"--auth-token=jwt,pub-key={public},priv-key={private},sign-method=RS256,ttl=10m"
    clusters = {
        target: Cluster(
            binary_for(target), 1, base_dir=tmp_path / target, extra_flags=[flag, "--bcrypt-cost=4"]
        )
        for target in ("etcd", "kvorum")
    }
    channels: dict[str, grpc.Channel] = {}
    try:
        transcripts: dict[str, list[object]] = {}
        for target, cluster in clusters.items():
            cluster.start()
            _enable_auth(cluster)
            transcripts[target] = [
                masked(cluster.etcdctl(*args))
                for args in (
                    (ROOT, "get", "/k"),
                    (ROOT, "put", "/k2", "v2"),
                    (ROOT, "user", "list"),
                    ("--user=root:wrong", "get", "/k"),
                    ("get", "/k"),
                )
            ]
            channels[target] = _channel(cluster)
        assert transcripts["kvorum"] == transcripts["etcd"]

        tokens = {target: _login(channel) for target, channel in channels.items()}
        etcd_header, etcd_claims = _decoded(tokens["etcd"])
        kvorum_header, kvorum_claims = _decoded(tokens["kvorum"])
        assert kvorum_header == etcd_header == {"alg": "RS256", "typ": "JWT"}
        assert sorted(kvorum_claims) == sorted(etcd_claims) == ["exp", "revision", "username"]
        assert kvorum_claims["username"] == etcd_claims["username"] == "root"
        # Same auth history (user add, role add, grant, enable): the same revision.
        assert kvorum_claims["revision"] == etcd_claims["revision"]
        exp = kvorum_claims["exp"]
        assert isinstance(exp, int) and 0 < exp - time.time() <= 600 + 5

        # Each server accepts the other's token: same key, same claims, same encoding.
        assert _get(channels["kvorum"], tokens["etcd"]) == b"v"
        assert _get(channels["etcd"], tokens["kvorum"]) == b"v"
        for target, channel in channels.items():
            with pytest.raises(grpc.RpcError) as forged:
                _get(channel, tokens[target][:-4] + "AAAA")
            assert forged.value.code() == grpc.StatusCode.UNAUTHENTICATED, target
            assert forged.value.details() == "etcdserver: invalid auth token", target
    finally:
        for channel in channels.values():
            channel.close()
        for cluster in clusters.values():
            cluster.stop()


@pytest.mark.parametrize("target", ["etcd", "kvorum"])
def test_a_jwt_from_one_member_works_on_all_until_auth_changes(target: str, tmp_path: Path) -> None:
    if shutil.which(binary_for(target)[0]) is None:
        pytest.skip(f"{target} is not installed")
    private, public = _write_keys(tmp_path, "ec")
    flags = [
        f"--auth-token=jwt,priv-key={private},pub-key={public},sign-method=ES256",
        "--bcrypt-cost=4",
    ]
    cluster = Cluster(binary_for(target), 3, base_dir=tmp_path / "cluster", extra_flags=flags)
    cluster.start()
    channels = [_channel(cluster, i) for i in range(3)]
    try:
        _enable_auth(cluster)
        token = _login(channels[0])
        assert [_get(channel, token) for channel in channels] == [b"v"] * 3

        done = cluster.etcdctl(ROOT, "role", "add", "another", endpoint=2)
        assert done.returncode == 0, done
        # Applied on every member: the token's revision is old everywhere (bounded wait
        # for a member still applying the change).
        for channel in channels:
            for _attempt in range(50):
                try:
                    _get(channel, token)
                except grpc.RpcError as exc:
                    assert exc.code() == grpc.StatusCode.INVALID_ARGUMENT
                    assert exc.details() == "etcdserver: revision of auth store is old"
                    break
                time.sleep(0.1)
            else:
                pytest.fail("a member still accepts a JWT older than the auth store")
        fresh = _login(channels[1])
        assert [_get(channel, fresh) for channel in channels] == [b"v"] * 3
    finally:
        for channel in channels:
            channel.close()
        cluster.stop()


def test_unusable_options_stop_the_start_with_etcds_text(tmp_path: Path) -> None:
    if shutil.which(binary_for("kvorum")[0]) is None:
        pytest.skip("kvorum is not installed in this environment")
    _, public = _write_keys(tmp_path, "rsa")
    client_port, peer_port = free_ports(2)
    for options, text in (
        ("jwt,sign-method=RS256", "auth: missing key data"),
        ("jwt,sign-method=XX1,pub-key=" + str(public), "auth: invalid auth options"),
        ("jwt,sign-method=ES256,pub-key=" + str(public), "key is not a valid ECDSA public key"),
    ):
        proc = subprocess.run(
            [
                *binary_for("kvorum"),
                "--data-dir", str(tmp_path / "never"),
                "--listen-client-urls", f"http://127.0.0.1:{client_port}",
                "--advertise-client-urls", f"http://127.0.0.1:{client_port}",
                "--listen-peer-urls", f"http://127.0.0.1:{peer_port}",
                "--initial-advertise-peer-urls", f"http://127.0.0.1:{peer_port}",
                "--initial-cluster", f"default=http://127.0.0.1:{peer_port}",
                f"--auth-token={options}",
            ],
            capture_output=True, text=True, timeout=60, check=False,
        )  # fmt: skip
        assert proc.returncode == 1, (options, proc.stderr[-2000:])
        assert text in proc.stderr, (options, proc.stderr[-2000:])
