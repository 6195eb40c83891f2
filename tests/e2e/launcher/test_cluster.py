"""kvorum.testing.Cluster against the real etcd 3.4: bootstrap, faults, restart, cleanup.

The launcher must bring up a static 3-member cluster from the clustering guide's command lines,
see leadership move when the leader is killed, restart a member on its data dir, and leave no
process behind -- checked by pid.
"""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import pytest

from kvorum.testing import CLUSTER_TOKEN, ETCD, Cluster, ClusterStartError
from kvorum.testing.pytest_plugin import ClusterFactory

CONVERGE_TIMEOUT_S = 15.0


def _gone(pid: int) -> bool:
    """No process with this pid (a zombie still counts as present: it was not reaped)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return False


def _eventually(check: object, what: str, timeout_s: float = CONVERGE_TIMEOUT_S) -> None:
    assert callable(check)
    deadline = time.monotonic() + timeout_s
    while not check():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.1)


def test_command_lines_follow_the_clustering_guide(tmp_path: Path) -> None:
    cluster = Cluster(["/opt/x/kvorum", "--flag"], 3, base_dir=tmp_path, extra_flags=["-x", "1"])
    peers = [m.spec.peer_url for m in cluster.members]
    clients = cluster.endpoints
    ports = [m.spec.peer_port for m in cluster.members] + [
        m.spec.client_port for m in cluster.members
    ]
    assert len(set(ports)) == 6
    initial = f"infra0={peers[0]},infra1={peers[1]},infra2={peers[2]}"
    for i, member in enumerate(cluster.members):
        assert list(member.command) == [
            "/opt/x/kvorum", "--flag",
            "-name", f"infra{i}",
            "-initial-advertise-peer-urls", peers[i],
            "-listen-peer-urls", peers[i],
            "-listen-client-urls", clients[i],
            "-advertise-client-urls", clients[i],
            "-initial-cluster-token", CLUSTER_TOKEN,
            "-initial-cluster", initial,
            "-initial-cluster-state", "new",
            "-data-dir", str(tmp_path / f"infra{i}.etcd"),
            "-x", "1",
        ]  # fmt: skip
        assert clients[i].startswith("http://127.0.0.1:")
    with pytest.raises(ValueError):
        Cluster(ETCD, 2, base_dir=tmp_path)


def test_three_member_etcd_lifecycle(tmp_path: Path, etcd_installed: None) -> None:
    cluster = Cluster(ETCD, 3, base_dir=tmp_path)
    with cluster:
        pids = [m.pid for m in cluster.members]
        rc, out, err = cluster.etcdctl("member", "list")
        assert rc == 0, err
        rows = [line.split(", ") for line in out.splitlines()]
        assert sorted((r[1], r[2], r[3], r[4]) for r in rows) == [
            ("started", f"infra{i}", m.spec.peer_url, m.client_url)
            for i, m in enumerate(cluster.members)
        ]

        leader = cluster.wait_for_leader()
        assert cluster.etcdctl("put", "k", "v1").returncode == 0

        # kill -9 the leader: it is reaped, and another member takes over.
        old_pid = cluster.member(leader).pid
        cluster.kill(leader, signal.SIGKILL)
        assert _gone(old_pid) and not cluster.member(leader).running
        new_leader = cluster.wait_for_leader(CONVERGE_TIMEOUT_S, exclude=[leader])
        assert new_leader != leader
        rc, _, err = cluster.etcdctl("put", "k", "v2")
        assert rc == 0, err

        # Restart on the same data dir: the member rejoins and catches up.
        cluster.restart(leader)
        assert cluster.member(leader).pid != old_pid

        def caught_up() -> bool:
            rc, out, _ = cluster.etcdctl(
                "get", "k", "--print-value-only", "--consistency=s", endpoint=leader
            )
            return rc == 0 and out == "v2\n"

        _eventually(caught_up, "the restarted member to catch up")

        # A paused follower does not stop the cluster; SIGCONT brings it back.
        follower = next(i for i in range(3) if i != cluster.wait_for_leader())
        cluster.kill(follower, signal.SIGSTOP)
        assert cluster.member(follower).paused
        rc, _, err = cluster.etcdctl("put", "k", "v3")
        assert rc == 0, err
        cluster.kill(follower, signal.SIGCONT)
        cluster.wait_healthy()
        rc, out, _ = cluster.etcdctl("member", "list")
        assert rc == 0 and out.count(", started, ") == 3
        pids = [m.pid for m in cluster.members] + [old_pid]
    # __exit__ stopped everything, by pid; nothing is left, not even a zombie.
    assert all(_gone(pid) for pid in pids)
    assert not any(m.running for m in cluster.members)


def test_stop_reaches_a_paused_member(tmp_path: Path, etcd_installed: None) -> None:
    cluster = Cluster(ETCD, 1, base_dir=tmp_path).start()
    try:
        pid = cluster.member(0).pid
        cluster.kill(0, signal.SIGSTOP)
    finally:
        cluster.stop()
    assert _gone(pid)


def test_failed_start_reports_the_members_log(tmp_path: Path) -> None:
    failing = ["/bin/sh", "-c", "echo cannot-start-marker; exit 3", "sh"]
    cluster = Cluster(failing, 1, base_dir=tmp_path, start_timeout_s=5.0)
    with pytest.raises(ClusterStartError) as caught:
        cluster.start()
    message = str(caught.value)
    assert "infra0" in message and "exited with status 3" in message
    assert "cannot-start-marker" in message
    assert _gone(cluster.member(0).pid)


def test_lost_port_race_is_retried_on_fresh_ports(tmp_path: Path, etcd_installed: None) -> None:
    # The first start pretends to lose its port the way etcd reports it; the retry runs etcd.
    script = (
        'if [ ! -e "$MARK" ]; then touch "$MARK"; '
        'echo "listen tcp 127.0.0.1:1: bind: address already in use"; exit 1; fi; '
        f'exec {ETCD} "$@"'
    )
    cluster = Cluster(
        ["/bin/sh", "-c", script, "sh"], 1, base_dir=tmp_path, env={"MARK": str(tmp_path / "m")}
    )
    first_ports = (cluster.member(0).spec.client_port, cluster.member(0).spec.peer_port)
    with cluster:
        assert (cluster.member(0).spec.client_port, cluster.member(0).spec.peer_port) != first_ports
        assert cluster.etcdctl("put", "a", "b").returncode == 0
        assert cluster.leader_index() == 0


def test_plugin_fixture_makes_started_clusters(kvorum_cluster: ClusterFactory) -> None:
    cluster = kvorum_cluster(1)
    rc, out, err = cluster.etcdctl("put", "a", "b", "-w", "json")
    assert rc == 0, err
    assert '"revision":2' in out
    status = cluster.status(0)
    assert status.leader == status.header.member_id


def test_five_member_cluster_comes_up_and_goes_away(tmp_path: Path, etcd_installed: None) -> None:
    with Cluster(ETCD, 5, base_dir=tmp_path) as cluster:
        pids = [m.pid for m in cluster.members]
        rc, out, err = cluster.etcdctl("member", "list", endpoint=4)
        assert rc == 0, err
        assert sorted(line.split(", ")[2] for line in out.splitlines()) == [
            f"infra{i}" for i in range(5)
        ]
        assert out.count(", started, ") == 5
        assert cluster.leader_index() in range(5)
    assert all(_gone(pid) for pid in pids)
