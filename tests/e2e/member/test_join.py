"""A member added at runtime (``member add``) joins with ``--initial-cluster-state existing``."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

from kvorum.testing import free_ports
from tests.e2e.member.helpers import (
    ListedMember,
    eventually,
    kvorum_binary,
    kvorum_cluster,
    member_list,
)

pytestmark = pytest.mark.timeout(90)

STOP_TIMEOUT_S = 10.0


#: How long a promoted learner may take to apply its promotion (a loaded 2-core CI box).
PROMOTION_APPLIED_WITHIN_S = 10.0


def test_added_member_joins_learns_the_log_and_serves(tmp_path: Path) -> None:
    with kvorum_cluster(1, tmp_path) as c:
        assert c.etcdctl("put", "before", "join") == (0, "OK\n", "")
        peer_port, client_port = free_ports(2)
        peer = f"http://127.0.0.1:{peer_port}"
        client = f"http://127.0.0.1:{client_port}"
        rc, out, err = c.etcdctl("member", "add", "new1", f"--peer-urls={peer}")
        assert rc == 0, err
        assert 'ETCD_INITIAL_CLUSTER_STATE="existing"' in out
        added = [m for m in member_list(c) if m.peer_urls == peer]
        assert [(m.status, m.name) for m in added] == [("unstarted", "")]

        command = [
            *kvorum_binary(),
            "--name", "new1",
            "--initial-advertise-peer-urls", peer,
            "--listen-peer-urls", peer,
            "--listen-client-urls", client,
            "--advertise-client-urls", client,
            "--initial-cluster", f"infra0={c.member(0).spec.peer_url},new1={peer}",
            "--initial-cluster-state", "existing",
            "--data-dir", str(tmp_path / "new1.etcd"),
        ]  # fmt: skip
        with (tmp_path / "new1.log").open("wb") as log:
            proc = subprocess.Popen(
                command, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
            )
        try:

            def joined() -> bool:
                rows = member_list(c)
                return any(m.name == "new1" and m.client_urls == client for m in rows)

            eventually(joined, "the new member to publish itself")
            # It learnt the log written before it existed, and takes writes itself.
            assert c.etcdctl("get", "before", endpoint=client) == (0, "before\njoin\n", "")
            assert c.etcdctl("put", "after", "join", endpoint=client) == (0, "OK\n", "")
            assert c.etcdctl("get", "after", endpoint=0) == (0, "after\njoin\n", "")

            def same_history() -> bool:
                hashes = [c.etcdctl("endpoint", "hashkv", endpoint=e) for e in (client, 0)]
                return (
                    all(h.returncode == 0 for h in hashes)
                    and len({h.stdout.split(", ")[-1] for h in hashes}) == 1
                )

            eventually(same_history, "both members to hash the same history")
        finally:
            os.kill(proc.pid, signal.SIGTERM)
            try:
                proc.wait(STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                os.kill(proc.pid, signal.SIGKILL)
                proc.wait(STOP_TIMEOUT_S)
        assert proc.returncode == 0, (tmp_path / "new1.log").read_text()[-2000:]


def test_learner_joins_is_refused_reads_then_promoted_updated_and_removed(tmp_path: Path) -> None:
    with kvorum_cluster(1, tmp_path) as c:
        assert c.etcdctl("put", "k", "v") == (0, "OK\n", "")
        (first,) = member_list(c)
        peer_port, client_port = free_ports(2)
        peer = f"http://127.0.0.1:{peer_port}"
        client = f"http://127.0.0.1:{client_port}"
        rc, out, err = c.etcdctl("member", "add", "l1", f"--peer-urls={peer}", "--learner")
        assert rc == 0, err
        command = [
            *kvorum_binary(),
            "--name", "l1",
            "--initial-advertise-peer-urls", peer,
            "--listen-peer-urls", peer,
            "--listen-client-urls", client,
            "--advertise-client-urls", client,
            "--initial-cluster", f"infra0={c.member(0).spec.peer_url},l1={peer}",
            "--initial-cluster-state", "existing",
            "--data-dir", str(tmp_path / "l1.etcd"),
        ]  # fmt: skip
        with (tmp_path / "l1.log").open("wb") as log:
            proc = subprocess.Popen(
                command, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
            )
        try:

            def learner() -> list[ListedMember]:
                return [m for m in member_list(c) if m.name == "l1" and m.client_urls == client]

            (joined,) = eventually(learner, "the learner to publish itself")
            assert joined.is_learner == "true"
            # etcd 3.4's learner serves status and serializable reads only.
            rc, _, err = c.etcdctl("get", "k", endpoint=client)
            assert rc != 0 and "etcdserver: rpc not supported for learner" in err
            assert c.etcdctl("get", "k", "--consistency=s", endpoint=client) == (0, "k\nv\n", "")

            rc, out, err = c.etcdctl("member", "promote", joined.id)
            assert (rc, out.split()[:3]) == (0, ["Member", joined.id, "promoted"]), err
            # The promotion is answered once the leader applied it; the learner applies it
            # when the commit reaches it, a moment later (in etcd too): until then it still
            # refuses linearizable reads as a learner.
            deadline = time.monotonic() + PROMOTION_APPLIED_WITHIN_S
            while (got := c.etcdctl("get", "k", endpoint=client)).returncode != 0:
                assert "rpc not supported for learner" in got.stderr, got
                assert time.monotonic() < deadline, f"still a learner: {got}"
                time.sleep(0.1)
            assert got == (0, "k\nv\n", "")
            rc, out, err = c.etcdctl("member", "update", joined.id, f"--peer-urls={peer}")
            assert (rc, out.split()[:3]) == (0, ["Member", joined.id, "updated"]), err
            rc, out, err = c.etcdctl("member", "remove", joined.id)
            assert (rc, out.split()[:3]) == (0, ["Member", joined.id, "removed"]), err
            # A removed member stops by itself; its id is gone for good.
            proc.wait(STOP_TIMEOUT_S)
            assert member_list(c) == [first]
            rc, _, err = c.etcdctl("member", "remove", joined.id)
            assert rc != 0 and "etcdserver: member not found" in err
        finally:
            if proc.poll() is None:
                os.kill(proc.pid, signal.SIGTERM)
                proc.wait(STOP_TIMEOUT_S)
        log_text = (tmp_path / "l1.log").read_text()
        assert "permanently removed from the cluster" in log_text
        assert proc.returncode == 0, log_text[-2000:]
