"""Member and cluster ids: etcd's derivation, checked against a real etcd 3.4."""

from __future__ import annotations

import json
import re
import subprocess
import time
from pathlib import Path

import pytest

from kvorum import ids
from kvorum.config import load_config
from tests.unit.config.etcd_oracle import (
    ETCDCTL,
    free_port,
    requires_etcd,
    requires_etcdctl,
    running_etcd,
)


def test_member_id_is_order_independent_and_depends_on_token() -> None:
    a = ids.member_id(["http://10.0.0.1:2380", "http://10.0.0.1:2381"], "tok")
    b = ids.member_id(["http://10.0.0.1:2381", "http://10.0.0.1:2380"], "tok")
    assert a == b
    assert a != ids.member_id(["http://10.0.0.1:2380", "http://10.0.0.1:2381"], "other")
    assert a != ids.member_id(["http://10.0.0.1:2380"], "tok")
    # A member added at runtime mixes in the time, so re-adding the same URLs differs.
    assert ids.member_id(["http://10.0.0.1:2380"], "tok", now_unix_s=1_700_000_000) != (
        ids.member_id(["http://10.0.0.1:2380"], "tok")
    )


def test_known_values() -> None:
    # Values printed by a real etcd 3.4.23 started with these flags (see the live tests below).
    member = ids.member_id(["http://127.0.0.1:24380"], "tok-1")
    assert ids.format_id(member) == "7e9a7ce156398981"
    assert ids.format_id(ids.cluster_id([member])) == "c9b7c0a7249d9782"


def test_cluster_id_ignores_member_order() -> None:
    assert ids.cluster_id([3, 1, 2]) == ids.cluster_id([1, 2, 3])
    assert ids.cluster_id([1, 2]) != ids.cluster_id([1, 3])


def test_format_and_parse() -> None:
    assert ids.format_id(0x0ABC) == "abc"
    assert ids.format_id(2**64 - 1) == "ffffffffffffffff"
    assert ids.parse_id("8E9E05C52164694D") == 0x8E9E05C52164694D
    for bad in ("", "xyz", "1" * 17, "-1", "0x10"):
        with pytest.raises(ValueError):
            ids.parse_id(bad)
    with pytest.raises(ValueError):
        ids.format_id(2**64)


def _wait_for(predicate: object, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if callable(predicate) and predicate():
            return
        time.sleep(0.05)
    raise AssertionError("timed out waiting for etcd")


@requires_etcdctl
def test_single_member_ids_match_real_etcd(tmp_path: Path) -> None:
    client, peer = free_port(), free_port()
    peer_url, client_url = f"http://127.0.0.1:{peer}", f"http://127.0.0.1:{client}"
    argv = [
        "--name", "n1",
        "--data-dir", str(tmp_path / "n1.etcd"),
        "--listen-client-urls", client_url,
        "--advertise-client-urls", client_url,
        "--listen-peer-urls", peer_url,
        "--initial-advertise-peer-urls", peer_url,
        "--initial-cluster", f"n1={peer_url}",
        "--initial-cluster-token", "kvorum-ids-test",
    ]  # fmt: skip
    config = load_config(argv)
    listing: dict[str, object] = {}

    def member_list() -> bool:
        done = subprocess.run(
            [str(ETCDCTL), "--endpoints", client_url, "member", "list", "-w", "json"],
            env={"ETCDCTL_API": "3", "PATH": "/usr/bin:/bin"},
            capture_output=True,
            text=True,
            timeout=5,
            check=False,
        )
        if done.returncode == 0:
            listing.update(json.loads(done.stdout))
        return done.returncode == 0

    with running_etcd(argv, tmp_path, tmp_path / "etcd.log"):
        _wait_for(member_list, timeout_s=10)
    header = listing["header"]
    members = listing["members"]
    assert isinstance(header, dict) and isinstance(members, list)
    assert config.initial_member_ids() == {"n1": members[0]["ID"]}
    assert config.initial_cluster_id() == header["cluster_id"]


@requires_etcd
def test_multi_member_ids_match_real_etcd(tmp_path: Path) -> None:
    # One etcd of a three-member cluster cannot elect a leader, but it logs every initial
    # member id and the cluster id as it bootstraps, which is all this test needs.
    client, peer_a, peer_b = free_port(), free_port(), free_port()
    urls = [f"http://127.0.0.1:{peer_b}", f"http://127.0.0.1:{peer_a}"]
    initial_cluster = (
        f"n1={urls[0]},n2=http://10.255.255.1:2380,n1={urls[1]},n3=https://node3.example:2380"
    )
    argv = [
        "--name", "n1",
        "--data-dir", str(tmp_path / "n1.etcd"),
        "--listen-client-urls", f"http://127.0.0.1:{client}",
        "--advertise-client-urls", f"http://127.0.0.1:{client}",
        "--listen-peer-urls", ",".join(urls),
        "--initial-advertise-peer-urls", ",".join(reversed(urls)),
        "--initial-cluster", initial_cluster,
        "--initial-cluster-token", "kvorum-ids-test-3",
    ]  # fmt: skip
    config = load_config(argv)
    log_path = tmp_path / "etcd.log"
    added = re.compile(r"added member ([0-9a-f]+) \[([^\]]*)\] to cluster ([0-9a-f]+)")
    with running_etcd(argv, tmp_path, log_path):
        _wait_for(lambda: len(added.findall(log_path.read_text())) >= 3, timeout_s=10)
    found = added.findall(log_path.read_text())
    logged = {tuple(sorted(peers.split())): member for member, peers, _ in found}
    assert {cluster for _, _, cluster in found} == {ids.format_id(config.initial_cluster_id())}
    expected = {
        urls_: ids.format_id(config.initial_member_ids()[name])
        for name, urls_ in config.initial_cluster_members
    }
    assert logged == expected
