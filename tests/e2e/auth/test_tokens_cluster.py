"""Simple tokens across a 3-member cluster: a token issued by one member works on every member
(each learns it from the Authenticate entry), and a password change revokes it everywhere.
Run against etcd 3.4 and kvorum alike."""

from __future__ import annotations

import shutil
import time
from pathlib import Path

import grpc
import pytest

from kvorum.api.pb.etcdserverpb import rpc_pb2, rpc_pb2_grpc
from kvorum.testing import ETCD, ETCDCTL, Cluster, binary_for

pytestmark = pytest.mark.skipif(
    shutil.which(ETCD) is None or shutil.which(ETCDCTL) is None,
    reason="etcd/etcdctl 3.4 not installed (run scripts/ensure-debian-packages)",
)

RPC_TIMEOUT_S = 20.0


def _channel(cluster: Cluster, index: int) -> grpc.Channel:
    return grpc.insecure_channel(cluster.member(index).client_url.removeprefix("http://"))


def _get(channel: grpc.Channel, token: str) -> bytes:
    kv = rpc_pb2_grpc.KVStub(channel)  # type: ignore[no-untyped-call]
    resp = kv.Range(
        rpc_pb2.RangeRequest(key=b"/k"), metadata=(("token", token),), timeout=RPC_TIMEOUT_S
    )
    return bytes(resp.kvs[0].value)


@pytest.mark.parametrize("target", ["etcd", "kvorum"])
def test_token_from_one_member_works_on_all_until_the_password_changes(
    target: str, tmp_path: Path
) -> None:
    if shutil.which(binary_for(target)[0]) is None:
        pytest.skip(f"{target} is not installed")
    cluster = Cluster(binary_for(target), 3, base_dir=tmp_path, extra_flags=["--bcrypt-cost=4"])
    cluster.start()
    channels = [_channel(cluster, i) for i in range(3)]
    try:
        for args in (
            ("user", "add", "root", "--new-user-password=rootpw"),
            ("auth", "enable"),
            ("--user=root:rootpw", "put", "/k", "v"),
        ):
            done = cluster.etcdctl(*args, endpoint=0)
            assert done.returncode == 0, (args, done)
        auth = rpc_pb2_grpc.AuthStub(channels[0])  # type: ignore[no-untyped-call]
        login = rpc_pb2.AuthenticateRequest(name="root", password="rootpw")
        token = auth.Authenticate(login, timeout=RPC_TIMEOUT_S).token
        prefix, _, index = token.partition(".")
        assert len(prefix) == 16 and prefix.isalpha() and index.isdigit()
        assert [_get(channel, token) for channel in channels] == [b"v"] * 3

        with pytest.raises(grpc.RpcError) as bogus:
            _get(channels[1], "nosuchtoken.1")
        assert bogus.value.code() == grpc.StatusCode.UNAUTHENTICATED
        assert bogus.value.details() == "etcdserver: invalid auth token"

        done = cluster.etcdctl(
            "--user=root:rootpw", "user", "passwd", "root", "--interactive=false",
            endpoint=1, stdin="newpw\n",
        )  # fmt: skip
        assert done.returncode == 0, done
        # Applied on every member: the old token is gone everywhere (a member may still be
        # applying the change for a moment, so each is asked until it refuses, bounded).
        for channel in channels:
            for _attempt in range(50):
                try:
                    _get(channel, token)
                except grpc.RpcError as exc:
                    assert exc.code() == grpc.StatusCode.UNAUTHENTICATED
                    break
                time.sleep(0.1)
            else:
                pytest.fail("a member still accepts a token revoked by a password change")
    finally:
        for channel in channels:
            channel.close()
        cluster.stop()
