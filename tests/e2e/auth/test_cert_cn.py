"""With --client-cert-auth and auth enabled, a call without a token comes from the user its
client certificate names (common name), on kvorum as on etcd 3.4.

One member with TLS on the client link; etcdctl presents ``client.pem`` (CN root) or
``other.pem`` (CN other), never a password. Every step's exit code and output must be equal
on etcd and kvorum.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from kvorum.testing import ETCD, ETCDCTL, Cluster, CtlResult, binary_for
from tests.e2e.auth.helpers import masked
from tests.e2e.tls.helpers import make_certs

pytestmark = pytest.mark.skipif(
    shutil.which(ETCD) is None or shutil.which(ETCDCTL) is None,
    reason="etcd/etcdctl 3.4 not installed (run scripts/ensure-debian-packages)",
)

#: (as the holder of other.pem instead of client.pem?, etcdctl arguments)
SCRIPT: list[tuple[bool, tuple[str, ...]]] = [
    (False, ("user", "add", "root", "--new-user-password=rootpw")),
    (False, ("auth", "enable")),
    (False, ("put", "/k", "v")),
    (False, ("user", "list")),
    (True, ("get", "/k")),
    (True, ("user", "list")),
    (False, ("user", "add", "other", "--no-password")),
    (True, ("get", "/k")),
    (False, ("role", "add", "reader")),
    (False, ("role", "grant-permission", "reader", "read", "/k")),
    (False, ("user", "grant-role", "other", "reader")),
    (True, ("get", "/k")),
    (True, ("put", "/k", "w")),
    (True, ("user", "list")),
    (True, ("--user=other:anything", "get", "/k")),
    (False, ("auth", "disable")),
]


def _run(target: str, base_dir: Path) -> list[CtlResult]:
    certs = make_certs(base_dir / "certs")
    tls = certs.cluster_tls(peer=False, peer_client_cert_auth=False)
    cluster = Cluster(
        binary_for(target), 1, base_dir=base_dir, extra_flags=["--bcrypt-cost=4"], tls=tls
    )
    other = [f"--cert={certs.path('other.pem')}", f"--key={certs.path('other-key.pem')}"]
    cluster.start()
    try:
        return [
            masked(cluster.etcdctl(*(other if as_other else []), *args))
            for as_other, args in SCRIPT
        ]
    finally:
        cluster.stop()


def test_certificate_common_name_is_the_user(tmp_path: Path) -> None:
    if shutil.which(binary_for("kvorum")[0]) is None:
        pytest.skip("kvorum is not installed in this environment")
    expected = _run("etcd", tmp_path / "etcd")
    got = _run("kvorum", tmp_path / "kvorum")
    mismatches = [
        f"step {i} {'other' if as_other else 'root'}: etcdctl {' '.join(args)}:\n"
        f"  etcd:   {want}\n  kvorum: {have}"
        for i, ((as_other, args), want, have) in enumerate(zip(SCRIPT, expected, got, strict=True))
        if want != have
    ]
    assert not mismatches, "\n".join(mismatches)
    # CN root was allowed what root may do; CN other was refused, then allowed its read.
    assert expected[3].returncode == 0 and expected[5].returncode != 0
    assert expected[11].returncode == 0 and expected[12].returncode != 0
