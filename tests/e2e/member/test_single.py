"""One real ``kvorum`` process driven by the real ``etcdctl``; start-up refusals; ``make run``."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import time
from pathlib import Path

import pytest

from kvorum.testing import ETCDCTL, Cluster
from tests.e2e.member.helpers import all_published, eventually, kvorum_binary, kvorum_cluster

pytestmark = pytest.mark.timeout(90)

REPO = Path(__file__).resolve().parents[3]
EXIT_TIMEOUT_S = 15.0


def test_single_member_serves_etcdctl_and_keeps_data_across_restart(tmp_path: Path) -> None:
    with kvorum_cluster(1, tmp_path) as c:
        assert c.etcdctl("put", "name", "joe") == (0, "OK\n", "")
        assert c.etcdctl("put", "/a/b", "1").returncode == 0
        assert c.etcdctl("get", "name") == (0, "name\njoe\n", "")
        assert c.etcdctl("get", "/", "--prefix", "--keys-only") == (0, "/a/b\n\n", "")

        (listed,) = eventually(lambda: all_published(c), "the member to publish itself")
        assert (listed.status, listed.name, listed.is_learner) == ("started", "infra0", "false")
        assert listed.client_urls == c.member(0).client_url
        assert listed.peer_urls == c.member(0).spec.peer_url

        rc, out, err = c.etcdctl("endpoint", "status", "-w", "json")
        assert rc == 0, err
        (status,) = json.loads(out)
        st = status["Status"]
        assert st["version"] == "3.4.23"
        assert st["leader"] == st["header"]["member_id"]  # a lone member leads itself
        assert st["raftIndex"] >= 3 and st["raftTerm"] >= 1
        assert st["header"]["revision"] == 3  # two puts on a fresh store at revision 1

        rc, out, err = c.etcdctl("endpoint", "health")
        assert rc == 0, err
        assert "is healthy: successfully committed proposal" in out + err  # etcdctl: stderr

        # SIGTERM: a clean stop (exit 0); the same data dir serves the same data again.
        pid = c.member(0).pid
        c.restart(0)
        assert c.member(0).pid != pid
        assert "stopped" in c.member(0).log_tail(200)
        assert c.etcdctl("get", "name") == (0, "name\njoe\n", "")
        rc, out, _ = c.etcdctl("get", "name", "-w", "json")
        assert json.loads(out)["header"]["revision"] == 3


def _run_member(args: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*kvorum_binary(), *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=EXIT_TIMEOUT_S,
        check=False,
    )


def _flags(name: str, peer_port: int, client_port: int, cluster: str) -> list[str]:
    peer = f"http://127.0.0.1:{peer_port}"
    client = f"http://127.0.0.1:{client_port}"
    return [
        "--name", name,
        "--listen-peer-urls", peer,
        "--initial-advertise-peer-urls", peer,
        "--listen-client-urls", client,
        "--advertise-client-urls", client,
        "--initial-cluster", cluster,
    ]  # fmt: skip


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def test_foreign_or_other_members_data_dir_is_refused_with_one_line(tmp_path: Path) -> None:
    # A directory with someone else's files: never initialised over, never used.
    foreign = tmp_path / "foreign"
    (foreign / "member" / "snap").mkdir(parents=True)
    (foreign / "member" / "snap" / "db").write_bytes(b"not ours")
    p0, c0 = _free_port(), _free_port()
    done = _run_member(
        [*_flags("a", p0, c0, f"a=http://127.0.0.1:{p0}"), "--data-dir", str(foreign)], tmp_path
    )
    assert done.returncode == 1
    assert "is not a kvorum data directory" in done.stderr
    assert (foreign / "member" / "snap" / "db").read_bytes() == b"not ours"

    # Member b started on member a's data dir (same cluster): refused before serving.
    p1, c1 = _free_port(), _free_port()
    both = f"a=http://127.0.0.1:{p0},b=http://127.0.0.1:{p1}"
    data_a = tmp_path / "a.etcd"
    proc = subprocess.Popen(
        [*kvorum_binary(), *_flags("a", p0, c0, both), "--data-dir", str(data_a)],
        cwd=tmp_path,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        eventually(lambda: (data_a / "member" / "wal").is_dir(), "member a's WAL")
        time.sleep(0.3)  # its WAL header is written right after the directory
    finally:
        os.kill(proc.pid, signal.SIGTERM)
        _, err_a = proc.communicate(timeout=EXIT_TIMEOUT_S)
    assert proc.returncode == 0, err_a
    done = _run_member([*_flags("b", p1, c1, both), "--data-dir", str(data_a)], tmp_path)
    assert done.returncode == 1
    lines = [line for line in done.stderr.splitlines() if "cannot start" in line]
    assert len(lines) == 1, done.stderr
    assert "refusing to start on another member's data" in lines[0]


def _port_free(port: int) -> bool:
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def test_make_run_serves_on_2379_and_stops_cleanly_on_sigterm(tmp_path: Path) -> None:
    kvorum_binary()
    if not (_port_free(2379) and _port_free(2380)):
        pytest.skip("127.0.0.1:2379 or :2380 is taken on this machine")
    proc = subprocess.Popen(
        ["make", "--no-print-directory", "-C", str(REPO), "run", f"RUN_DIR={tmp_path}"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    ctl = [ETCDCTL, "--endpoints=127.0.0.1:2379"]
    env = {**{k: v for k, v in os.environ.items() if not k.startswith("ETCDCTL_")}}
    env["ETCDCTL_API"] = "3"
    try:

        def put() -> bool:
            if proc.poll() is not None:
                return True  # exited: judged below
            done = subprocess.run(
                [*ctl, "--command-timeout=1s", "put", "greeting", "hello"],
                capture_output=True,
                text=True,
                env=env,
                check=False,
            )
            return done.returncode == 0 and done.stdout == "OK\n"

        eventually(put, "make run to serve on 127.0.0.1:2379", timeout_s=30.0)
        if proc.poll() is not None:
            out = proc.stdout.read() if proc.stdout is not None else ""
            if "address already in use" in out:
                pytest.skip("another process took 127.0.0.1:2379 or :2380 meanwhile")
            pytest.fail(f"make run exited with {proc.returncode}:\n{out[-2000:]}")
        got = subprocess.run(
            [*ctl, "get", "greeting"], capture_output=True, text=True, env=env, check=False
        )
        assert got.stdout == "greeting\nhello\n"
        assert (tmp_path / "default.etcd" / "member" / "wal").is_dir()
    finally:
        # make ran the member with exec: its only child is the member; signal that one.
        children = Path(f"/proc/{proc.pid}/task/{proc.pid}/children")
        pids = [int(p) for p in children.read_text().split()] if children.exists() else []
        for pid in pids:
            os.kill(pid, signal.SIGTERM)
        try:
            out, _ = proc.communicate(timeout=EXIT_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            out, _ = proc.communicate()
    assert pids, "make started no member"
    assert proc.returncode == 0, out
    assert "stopped" in out.splitlines()[-1]


def test_backend_quota_raises_nospace_through_raft_and_deletes_still_work(tmp_path: Path) -> None:
    quota = ["-quota-backend-bytes", "60000"]
    with Cluster(kvorum_binary(), 1, base_dir=tmp_path, extra_flags=quota) as c:
        refused = None
        for i in range(20):
            rc, _, err = c.etcdctl("put", f"k{i}", "x" * 4000)
            if rc != 0:
                refused = err
                break
        assert refused is not None and "etcdserver: mvcc: database space exceeded" in refused
        # The member raised the alarm through raft: every member now refuses puts alike.
        listed = eventually(lambda: c.etcdctl("alarm", "list").stdout, "the NOSPACE alarm")
        assert listed.endswith(" alarm:NOSPACE \n")
        rc, _, err = c.etcdctl("put", "small", "1")
        assert rc != 0 and "database space exceeded" in err
        assert c.etcdctl("del", "k0") == (0, "1\n", "")  # deletes make room, as in etcd
        rc, _, err = c.etcdctl("compaction", "100000")  # an error decided when applied
        assert rc != 0 and "etcdserver: mvcc: required revision is a future revision" in err
