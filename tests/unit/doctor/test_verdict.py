"""The doctor's rules on synthetic measurements: each finding's line, the verdict, the advice."""

from __future__ import annotations

import json

import pytest

from kvorum.doctor.cli import render_json, render_table
from kvorum.doctor.measure import peer_urls_of, read_steal_ticks
from kvorum.doctor.verdict import (
    Distribution,
    Finding,
    Level,
    Measurements,
    PeerProbe,
    advise,
    judge,
    summarise,
)


def dist(p50: float, p99: float, max_ms: float | None = None, count: int = 100) -> Distribution:
    return Distribution(count, p50, p99, max_ms if max_ms is not None else p99, p50)


FAST_DISK = dist(0.5, 2.0)
PROMPT_TIMER = dist(0.1, 1.0)


def measured(**changes: object) -> Measurements:
    base: dict[str, object] = {
        "seconds": 3.0,
        "fsync": FAST_DISK,
        "fsync_dir": "/data",
        "timer_lateness": PROMPT_TIMER,
        "steal_fraction": 0.0,
        "peers": (),
        "member_count": 3,
    }
    base.update(changes)
    return Measurements(**base)  # type: ignore[arg-type]


def finding(report_findings: tuple[Finding, ...], check: str) -> Finding:
    matches = [f for f in report_findings if f.check == check]
    assert len(matches) == 1, report_findings
    return matches[0]


def peer(p50: float, p99: float, max_ms: float | None = None, failures: int = 0) -> PeerProbe:
    return PeerProbe("http://10.0.0.2:2380", dist(p50, p99, max_ms), "kvorum hello", failures)


def test_summarise_nearest_rank_percentiles_in_ms() -> None:
    d = summarise([i / 1000 for i in range(1, 101)])  # 1 ms .. 100 ms
    assert d is not None
    assert (d.count, d.p50_ms, d.p99_ms, d.max_ms) == (100, 50.0, 99.0, 100.0)
    assert d.mean_ms == pytest.approx(50.5)
    assert d.jitter_ms == pytest.approx(49.0)
    assert summarise([]) is None


def test_a_healthy_machine_is_ok_and_keeps_etcd_defaults() -> None:
    report = judge(measured(peers=(peer(0.2, 0.8), peer(0.3, 1.0))))
    assert report.verdict is Level.OK
    assert all(f.level is Level.OK for f in report.findings)
    assert (report.advice.heartbeat_ms, report.advice.election_ms) == (100, 1000)


@pytest.mark.parametrize(
    ("p99_ms", "level"),
    [(9.9, Level.OK), (10.1, Level.WARN), (99.0, Level.WARN), (100.0, Level.FAIL)],
)
def test_fsync_p99_against_etcds_10_ms_and_the_heartbeat(p99_ms: float, level: Level) -> None:
    report = judge(measured(fsync=dist(1.0, p99_ms)))
    assert finding(report.findings, "wal fsync").level is level


def test_no_fsync_completed_fails() -> None:
    assert finding(judge(measured(fsync=None)).findings, "wal fsync").level is Level.FAIL


@pytest.mark.parametrize(
    ("probe", "level", "words"),
    [
        (peer(1.0, 40.0), Level.OK, "well inside"),
        (peer(20.0, 150.0), Level.WARN, "above the 100 ms heartbeat"),
        (peer(1.0, 80.0), Level.WARN, "jitter"),
        (peer(100.0, 500.0), Level.FAIL, "half the 1000 ms election timeout"),
        (peer(1.0, 2.0, failures=20), Level.FAIL, "unanswered"),
        (peer(1.0, 2.0, failures=1), Level.WARN, "unanswered"),
        (PeerProbe("http://x:1", None, "tcp connect", 5, "refused"), Level.FAIL, "refused"),
    ],
)
def test_peer_round_trips(probe: PeerProbe, level: Level, words: str) -> None:
    f = finding(judge(measured(peers=(probe,))).findings, f"peer {probe.url}")
    assert f.level is level
    assert words in f.reason or words in f.measured


def test_scheduling_stalls() -> None:
    ok = judge(measured(timer_lateness=dist(0.1, 5.0, 20.0)))
    assert finding(ok.findings, "scheduling stalls").level is Level.OK
    late = judge(measured(timer_lateness=dist(0.1, 30.0, 60.0)))
    assert finding(late.findings, "scheduling stalls").level is Level.WARN
    starved = judge(measured(timer_lateness=dist(0.1, 30.0, 600.0)))
    assert finding(starved.findings, "scheduling stalls").level is Level.FAIL


@pytest.mark.parametrize(
    ("steal", "level"), [(None, Level.OK), (0.01, Level.OK), (0.06, Level.WARN), (0.3, Level.FAIL)]
)
def test_cpu_steal(steal: float | None, level: Level) -> None:
    assert finding(judge(measured(steal_fraction=steal)).findings, "cpu steal").level is level


@pytest.mark.parametrize(
    ("members", "level", "words"),
    [
        (1, Level.OK, "no failure"),
        (2, Level.WARN, "even"),
        (3, Level.OK, "1 failure"),
        (4, Level.WARN, "even"),
        (5, Level.OK, "2 failure"),
        (9, Level.WARN, "more than 7"),
    ],
)
def test_cluster_shape(members: int, level: Level, words: str) -> None:
    f = finding(judge(measured(member_count=members)).findings, "cluster shape")
    assert (f.level, words in f.reason) == (level, True)


def test_advice_follows_a_slow_network_and_a_long_stall() -> None:
    far = measured(peers=(peer(60.0, 90.0, 120.0),))
    advice = advise(far)
    assert advice.heartbeat_ms == 140  # 1.5 x 90 ms, rounded up to 10 ms
    assert advice.election_ms == 1400  # 10 x the heartbeat
    assert "round trip" in advice.heartbeat_reasons[0]
    stalled = advise(measured(timer_lateness=dist(0.1, 5.0, 900.0)))
    assert stalled.heartbeat_ms == 100
    assert stalled.election_ms == 1800  # 2 x the 900 ms stall
    assert "timer" in stalled.election_reasons[0]


def test_advice_past_etcds_maximum_election_timeout_fails() -> None:
    report = judge(measured(fsync=dist(1.0, 5.0, 30_000.0)))
    assert report.advice.election_ms == 60_000
    assert finding(report.findings, "timing advice").level is Level.FAIL
    assert report.verdict is Level.FAIL


def test_current_settings_shorter_than_advised_warn_and_verdict_is_the_worst() -> None:
    report = judge(measured(peers=(peer(60.0, 90.0),)))
    advice = finding(report.findings, "timing advice")
    assert advice.level is Level.WARN
    assert "--heartbeat-interval=140 --election-timeout=1400" in advice.reason
    assert report.verdict is Level.WARN
    tuned = judge(measured(peers=(peer(60.0, 90.0),), heartbeat_ms=150, election_ms=1500))
    assert all(f.check != "timing advice" for f in tuned.findings)


def test_steal_ticks_from_proc_stat() -> None:
    text = "cpu  100 5 50 800 10 1 2 30 0 0\ncpu0 50 2 25 400 5 0 1 15 0 0\n"
    assert read_steal_ticks(text) == (30, 998)
    assert read_steal_ticks("intr 1 2 3\n") is None


def test_peer_urls_from_initial_cluster_leave_this_member_out() -> None:
    urls, members = peer_urls_of("a=http://h1:2380,b=http://h2:2380,c=http://h3:2380", "b")
    assert (urls, members) == (("http://h1:2380", "http://h3:2380"), 3)
    with pytest.raises(ValueError, match="name=url"):
        peer_urls_of("http://h1:2380", "")


def test_table_and_json_carry_the_same_report() -> None:
    report = judge(measured(peers=(peer(60.0, 90.0),)))
    table = render_table(report)
    rows = [
        [c.strip() for c in line.strip("|").split("|")]
        for line in table.splitlines()
        if line.startswith("|")
    ]
    assert rows[0] == ["CHECK", "MEASURED", "LEVEL", "REASON"]
    assert rows[-2][:3] == ["--heartbeat-interval", "140", "100"]
    assert "verdict: warn" in table
    body = json.loads(render_json(report))
    assert body["verdict"] == "warn"
    assert body["advice"]["election_ms"] == 1400
    assert [f["check"] for f in body["findings"]] == [f.check for f in report.findings]
    assert body["measurements"]["peers"][0]["round_trip"]["p99_ms"] == 90.0
