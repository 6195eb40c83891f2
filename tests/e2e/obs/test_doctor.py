"""``kvorum doctor`` as an operator runs it: the real command on this machine, and against a
peer that is paused in bursts with SIGSTOP (a starved or frozen member)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import threading
import time
from pathlib import Path

import pytest

from kvorum.testing import Cluster, binary_for

DOCTOR_TIMEOUT_S = 60.0
PAUSE_S = 0.4  # each burst: the member is stopped this long ...
RUN_S = 0.3  # ... then runs this long
BAD_SECONDS = 3.0


def _doctor(*args: str) -> subprocess.CompletedProcess[str]:
    command = binary_for("kvorum")
    if not Path(command[0]).exists():
        pytest.skip(f"{command[0]} is not installed")
    return subprocess.run(
        [*command, "doctor", *args],
        capture_output=True,
        text=True,
        timeout=DOCTOR_TIMEOUT_S,
        check=False,
    )


def _rows(table: str) -> list[list[str]]:
    return [
        [cell.strip() for cell in line.strip().strip("|").split("|")]
        for line in table.splitlines()
        if line.startswith("|")
    ]


def test_doctor_on_this_machine(tmp_path: Path) -> None:
    data_dir = tmp_path / "member.etcd"
    done = _doctor("--seconds", "1", "--data-dir", str(data_dir))
    assert done.returncode == 0, done.stderr
    rows = _rows(done.stdout)
    header = rows.index(["CHECK", "MEASURED", "LEVEL", "REASON"])
    advice = rows.index(["FLAG", "ADVISED", "CURRENT", "WHY"])
    findings = {row[0]: row for row in rows[header + 1 : advice]}
    assert set(findings) == {"wal fsync", "scheduling stalls", "cpu steal", "cluster shape"}
    assert all(row[2] in ("ok", "warn", "fail") for row in findings.values())
    assert findings["wal fsync"][1].startswith("p50 ")
    assert findings["cluster shape"][1:3] == ["1 member", "ok"]
    flags = {row[0]: row for row in rows[advice + 1 :]}
    assert int(flags["--heartbeat-interval"][1]) >= 100
    assert int(flags["--election-timeout"][1]) >= 10 * int(flags["--heartbeat-interval"][1])
    assert any(line.startswith("verdict: ") for line in done.stdout.splitlines())
    # The probe file is gone; the data dir itself is left for the member.
    assert list(data_dir.iterdir()) == []

    as_json = _doctor("--seconds", "0.5", "--data-dir", str(data_dir), "-w", "json")
    assert as_json.returncode == 0, as_json.stderr
    body = json.loads(as_json.stdout)
    assert body["verdict"] in ("ok", "warn", "fail")
    assert body["measurements"]["fsync"]["count"] > 0
    assert body["advice"]["heartbeat_ms"] >= 100

    assert _doctor("--seconds", "0").returncode == 2
    assert _doctor("--bogus").returncode == 2


def _pause_in_bursts(pid: int, stop: threading.Event) -> None:
    """SIGSTOP/SIGCONT the member until told to stop (bounded by the test's own time)."""
    deadline = time.monotonic() + 4 * BAD_SECONDS
    try:
        while not stop.is_set() and time.monotonic() < deadline:
            os.kill(pid, signal.SIGSTOP)
            stop.wait(PAUSE_S)
            os.kill(pid, signal.SIGCONT)
            stop.wait(RUN_S)
    finally:
        os.kill(pid, signal.SIGCONT)


def test_doctor_flags_a_peer_paused_in_bursts(tmp_path: Path) -> None:
    kvorum = binary_for("kvorum")
    if not Path(kvorum[0]).exists():
        pytest.skip(f"{kvorum[0]} is not installed")
    with Cluster(kvorum, 1, base_dir=tmp_path / "peer") as c:
        peer_url = c.member(0).spec.peer_url
        args = ("--data-dir", str(tmp_path / "d"), "--peer-urls", peer_url, "-w", "json")
        calm = json.loads(_doctor("--seconds", "1", *args).stdout)
        stop = threading.Event()
        pauser = threading.Thread(target=_pause_in_bursts, args=(c.member(0).pid, stop))
        pauser.start()
        try:
            paused = _doctor("--seconds", str(BAD_SECONDS), *args)
        finally:
            stop.set()
            pauser.join(timeout=10)
    assert paused.returncode == 0, paused.stderr
    bad = json.loads(paused.stdout)

    calm_peer = calm["measurements"]["peers"][0]
    bad_peer = bad["measurements"]["peers"][0]
    # The member's own loop answers the hello: a paused member answers late, where the
    # kernel would still have accepted a bare TCP connection at once.
    assert calm_peer["method"] == bad_peer["method"] == "kvorum hello"
    assert bad_peer["round_trip"]["max_ms"] >= 0.5 * PAUSE_S * 1000
    assert bad_peer["round_trip"]["p99_ms"] > calm_peer["round_trip"]["p99_ms"] + 100
    finding = next(f for f in bad["findings"] if f["check"] == f"peer {peer_url}")
    assert finding["level"] in ("warn", "fail"), finding
    assert bad["verdict"] in ("warn", "fail")
    # The advice moves away from the defaults to absorb the stalls.
    assert bad["advice"]["heartbeat_ms"] > 100
    assert bad["advice"]["election_ms"] >= 10 * bad["advice"]["heartbeat_ms"]
