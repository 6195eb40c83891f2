"""The doctor's judgement: measurements in, findings, a verdict and timing advice out (pure).

Nothing here measures or prints; ``measure`` gathers the figures and ``cli`` shows the report,
so every rule below is tested with synthetic measurements.

The rules, and where each line comes from:

- **WAL fsync** (``fdatasync`` of the data dir): etcd's hardware guidance is a p99 below
  10 ms. Above it writes slow down (warn). A p99 of a whole heartbeat interval or more fails:
  a leader's next heartbeats leave only after its current fsync ends (the Ready loop persists
  before it takes the next Ready), so followers hear nothing for that long.
- **peer round trips**: etcd's tuning guide sets the heartbeat interval near the round trip
  between members and the election timeout to at least ten round trips. A p99 above the
  heartbeat interval warns; above half the election timeout fails; so does an unreachable peer.
  Jitter (p99 - p50) above half a heartbeat warns: it is what turns into missed heartbeats.
- **scheduling stalls**: how late a 10 ms timer fires while the doctor runs. A tick that comes
  late sends its heartbeat late; kvorum warns when a leader's tick is two intervals late. p99
  above 10 ms warns, a stall of half an election timeout fails.
- **CPU steal** (``/proc/stat``): time the hypervisor gave to other guests. 5 % warns, 20 %
  fails.
- **cluster shape**: an even member count tolerates no more failures than one member fewer
  (warn); more than 7 members slows every commit (warn).

Advice: the heartbeat interval is the largest of etcd's 100 ms default, 1.5 x the worst peer
p99 round trip, the fsync p99 and the timer p99 (rounded up to 10 ms); the election timeout
the largest of etcd's 1000 ms default, 10 x that heartbeat (etcd's guide) and 2 x the longest
stall seen (fsync, timer or round trip, rounded up to 100 ms) -- so one stall alone does not
start an election. etcd caps the election timeout at 50 s; advice past it fails.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from dataclasses import dataclass
from enum import IntEnum

__all__ = [
    "DEFAULT_ELECTION_MS",
    "DEFAULT_HEARTBEAT_MS",
    "Advice",
    "Distribution",
    "Finding",
    "Level",
    "Measurements",
    "PeerProbe",
    "Report",
    "advise",
    "judge",
    "summarise",
]

DEFAULT_HEARTBEAT_MS = 100
DEFAULT_ELECTION_MS = 1000
MAX_ELECTION_MS = 50_000  # etcd refuses a longer --election-timeout
FSYNC_P99_GUIDE_MS = 10.0  # etcd's hardware guidance for wal_fsync p99
TIMER_P99_WARN_MS = 10.0
STEAL_WARN = 0.05
STEAL_FAIL = 0.20
ELECTION_PER_HEARTBEAT = 10  # etcd's tuning guide: election >= 10 x heartbeat / round trip
HEARTBEAT_PER_RTT = 1.5  # heartbeat near the round trip, with room for jitter
ELECTION_PER_STALL = 2
MAX_SENSIBLE_MEMBERS = 7


class Level(IntEnum):
    OK = 0
    WARN = 1
    FAIL = 2

    @property
    def text(self) -> str:
        return self.name.lower()


@dataclass(frozen=True, slots=True)
class Distribution:
    """Summary of timing samples, in milliseconds."""

    count: int
    p50_ms: float
    p99_ms: float
    max_ms: float
    mean_ms: float

    @property
    def jitter_ms(self) -> float:
        """How far the slow tail lies from the typical sample."""
        return max(0.0, self.p99_ms - self.p50_ms)

    def brief(self) -> str:
        return (
            f"p50 {_ms(self.p50_ms)}, p99 {_ms(self.p99_ms)}, max {_ms(self.max_ms)} "
            f"(n={self.count})"
        )


def summarise(samples_s: Sequence[float]) -> Distribution | None:
    """Percentiles (nearest rank) of durations given in seconds; None without samples."""
    if not samples_s:
        return None
    ordered = sorted(samples_s)
    n = len(ordered)

    def rank(q: float) -> float:
        return ordered[min(n - 1, max(0, math.ceil(q * n) - 1))] * 1000

    return Distribution(
        n, rank(0.50), rank(0.99), ordered[-1] * 1000, statistics.fmean(ordered) * 1000
    )


@dataclass(frozen=True, slots=True)
class PeerProbe:
    """Round trips to one peer URL: the kvorum peer hello when the peer speaks it, else the
    TCP connect; failures are probes that got no answer in time."""

    url: str
    round_trip: Distribution | None
    method: str  # "kvorum hello" or "tcp connect"
    failures: int = 0
    error: str = ""


@dataclass(frozen=True, slots=True)
class Measurements:
    seconds: float
    fsync: Distribution | None
    fsync_dir: str
    timer_lateness: Distribution | None
    steal_fraction: float | None  # None where /proc/stat is not readable
    peers: tuple[PeerProbe, ...] = ()
    member_count: int = 1
    heartbeat_ms: int = DEFAULT_HEARTBEAT_MS  # the settings judged
    election_ms: int = DEFAULT_ELECTION_MS


@dataclass(frozen=True, slots=True)
class Finding:
    check: str
    measured: str
    level: Level
    reason: str


@dataclass(frozen=True, slots=True)
class Advice:
    heartbeat_ms: int
    election_ms: int
    heartbeat_reasons: tuple[str, ...]
    election_reasons: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Report:
    verdict: Level
    findings: tuple[Finding, ...]
    advice: Advice
    measurements: Measurements


def _ms(value: float) -> str:
    return f"{value:.3g} ms" if value < 100 else f"{value:.0f} ms"


def _round_up(value: float, step: int) -> int:
    return int(math.ceil(value / step) * step)


def _worst_peer_p99_ms(m: Measurements) -> float:
    return max((p.round_trip.p99_ms for p in m.peers if p.round_trip is not None), default=0.0)


def _fsync_finding(m: Measurements) -> Finding:
    d = m.fsync
    if d is None:
        return Finding(
            "wal fsync", "not measured", Level.FAIL, f"no fdatasync completed in {m.fsync_dir}"
        )
    measured = d.brief()
    if d.p99_ms >= m.heartbeat_ms:
        return Finding(
            "wal fsync",
            measured,
            Level.FAIL,
            f"p99 at or above the {m.heartbeat_ms} ms heartbeat interval: a leader's heartbeats "
            "wait behind its fsync, followers will call elections",
        )
    if d.p99_ms > FSYNC_P99_GUIDE_MS:
        return Finding(
            "wal fsync",
            measured,
            Level.WARN,
            f"p99 above etcd's {FSYNC_P99_GUIDE_MS:g} ms guidance: every write waits for it; "
            "use a faster (SSD) or less shared disk for the data dir",
        )
    return Finding(
        "wal fsync", measured, Level.OK, f"p99 within etcd's {FSYNC_P99_GUIDE_MS:g} ms guidance"
    )


def _peer_finding(m: Measurements, probe: PeerProbe) -> Finding:
    check = f"peer {probe.url}"
    d = probe.round_trip
    if d is None:
        return Finding(check, "no answer", Level.FAIL, probe.error or "peer unreachable")
    measured = f"{d.brief()}, {probe.method}"
    if probe.failures:
        measured += f", {probe.failures} unanswered"
    half_election = m.election_ms / 2
    if probe.failures and probe.failures * 10 >= d.count:
        return Finding(check, measured, Level.FAIL, "over 10 % of the probes went unanswered")
    if d.p99_ms >= half_election:
        return Finding(
            check,
            measured,
            Level.FAIL,
            f"p99 round trip reaches half the {m.election_ms} ms election timeout: "
            "followers will time out on a healthy leader",
        )
    if d.p99_ms > m.heartbeat_ms:
        return Finding(
            check,
            measured,
            Level.WARN,
            f"p99 round trip above the {m.heartbeat_ms} ms heartbeat interval "
            "(etcd's guide: heartbeat near the round trip)",
        )
    if d.jitter_ms > m.heartbeat_ms / 2:
        return Finding(
            check,
            measured,
            Level.WARN,
            f"jitter (p99 - p50 = {_ms(d.jitter_ms)}) above half the heartbeat interval: "
            "heartbeats arrive in bursts",
        )
    if probe.failures:
        return Finding(check, measured, Level.WARN, "some probes went unanswered")
    return Finding(check, measured, Level.OK, "round trips well inside the heartbeat interval")


def _timer_finding(m: Measurements) -> Finding:
    d = m.timer_lateness
    if d is None:
        return Finding("scheduling stalls", "not measured", Level.WARN, "no timer sample taken")
    measured = f"timer late by {d.brief()}"
    if d.max_ms >= m.election_ms / 2:
        return Finding(
            "scheduling stalls",
            measured,
            Level.FAIL,
            f"a stall of {_ms(d.max_ms)} reaches half the {m.election_ms} ms election timeout: "
            "the process is starved (CPU quota, overcommitted host, swapping)",
        )
    if d.p99_ms > TIMER_P99_WARN_MS or d.max_ms > m.heartbeat_ms:
        return Finding(
            "scheduling stalls",
            measured,
            Level.WARN,
            "timers fire late: ticks and heartbeats slip; give the member a dedicated core",
        )
    return Finding("scheduling stalls", measured, Level.OK, "timers fire on time")


def _steal_finding(m: Measurements) -> Finding:
    steal = m.steal_fraction
    if steal is None:
        return Finding("cpu steal", "not measured", Level.OK, "/proc/stat not readable here")
    measured = f"{steal * 100:.1f} %"
    if steal >= STEAL_FAIL:
        return Finding(
            "cpu steal",
            measured,
            Level.FAIL,
            "the hypervisor takes the CPU away: move to a less shared host",
        )
    if steal >= STEAL_WARN:
        return Finding(
            "cpu steal", measured, Level.WARN, "noisy neighbours take CPU time: stalls will follow"
        )
    return Finding("cpu steal", measured, Level.OK, "no noticeable steal")


def _shape_finding(m: Measurements) -> Finding:
    n = m.member_count
    measured = f"{n} member{'s' if n != 1 else ''}"
    if n > 1 and n % 2 == 0:
        return Finding(
            "cluster shape",
            measured,
            Level.WARN,
            f"an even count: {n} members tolerate {(n - 1) // 2} failure(s), no more than "
            f"{n - 1} would, and every commit waits for one more member",
        )
    if n > MAX_SENSIBLE_MEMBERS:
        return Finding(
            "cluster shape",
            measured,
            Level.WARN,
            f"more than {MAX_SENSIBLE_MEMBERS} voters: every commit waits for more",
        )
    if n == 1:
        return Finding("cluster shape", measured, Level.OK, "a single member: no failure tolerated")
    return Finding("cluster shape", measured, Level.OK, f"tolerates {(n - 1) // 2} failure(s)")


def advise(m: Measurements) -> Advice:
    """The ``--heartbeat-interval`` and ``--election-timeout`` these measurements call for."""
    hb_reasons = [f"etcd's default {DEFAULT_HEARTBEAT_MS} ms is the floor"]
    heartbeat = float(DEFAULT_HEARTBEAT_MS)
    rtt_p99 = _worst_peer_p99_ms(m)
    candidates = [
        (
            HEARTBEAT_PER_RTT * rtt_p99,
            f"{HEARTBEAT_PER_RTT:g} x worst peer p99 round trip ({_ms(rtt_p99)})",
        )
    ]
    if m.fsync is not None:
        candidates.append(
            (m.fsync.p99_ms, f"fsync p99 ({_ms(m.fsync.p99_ms)}): heartbeats wait behind it")
        )
    if m.timer_lateness is not None:
        candidates.append(
            (m.timer_lateness.p99_ms, f"timer lateness p99 ({_ms(m.timer_lateness.p99_ms)})")
        )
    for value, why in candidates:
        if value > heartbeat:
            heartbeat = value
            hb_reasons = [f"at least {why}"]
    heartbeat_ms = _round_up(heartbeat, 10)

    stalls = [
        ("fsync", m.fsync.max_ms if m.fsync is not None else 0.0),
        ("timer", m.timer_lateness.max_ms if m.timer_lateness is not None else 0.0),
        (
            "round trip",
            max((p.round_trip.max_ms for p in m.peers if p.round_trip is not None), default=0.0),
        ),
    ]
    worst_name, worst_stall = max(stalls, key=lambda s: s[1])
    election = float(DEFAULT_ELECTION_MS)
    el_reasons = [f"etcd's default {DEFAULT_ELECTION_MS} ms is the floor"]
    for value, why in (
        (
            ELECTION_PER_HEARTBEAT * heartbeat_ms,
            f"{ELECTION_PER_HEARTBEAT} x the heartbeat interval (etcd's tuning guide)",
        ),
        (
            ELECTION_PER_STALL * worst_stall,
            f"{ELECTION_PER_STALL} x the longest stall seen ({worst_name}, {_ms(worst_stall)}), "
            "so one stall alone starts no election",
        ),
    ):
        if value > election:
            election = value
            el_reasons = [f"at least {why}"]
    election_ms = _round_up(election, 100)
    if election_ms > MAX_ELECTION_MS:
        el_reasons.append(
            f"past etcd's {MAX_ELECTION_MS} ms maximum: this environment cannot hold a cluster"
        )
    return Advice(heartbeat_ms, election_ms, tuple(hb_reasons), tuple(el_reasons))


def judge(m: Measurements) -> Report:
    """Findings for every measured aspect, the verdict (the worst level) and the advice."""
    findings = [_fsync_finding(m)]
    findings.extend(_peer_finding(m, probe) for probe in m.peers)
    findings.append(_timer_finding(m))
    findings.append(_steal_finding(m))
    findings.append(_shape_finding(m))
    advice = advise(m)
    if advice.election_ms > MAX_ELECTION_MS:
        findings.append(
            Finding(
                "timing advice",
                f"election timeout {advice.election_ms} ms",
                Level.FAIL,
                f"beyond etcd's {MAX_ELECTION_MS} ms maximum",
            )
        )
    elif (advice.heartbeat_ms, advice.election_ms) != (m.heartbeat_ms, m.election_ms) and (
        advice.heartbeat_ms > m.heartbeat_ms or advice.election_ms > m.election_ms
    ):
        findings.append(
            Finding(
                "timing advice",
                f"heartbeat {m.heartbeat_ms} ms, election {m.election_ms} ms",
                Level.WARN,
                f"shorter than advised: use --heartbeat-interval={advice.heartbeat_ms} "
                f"--election-timeout={advice.election_ms}",
            )
        )
    verdict = max((f.level for f in findings), default=Level.OK)
    return Report(Level(verdict), tuple(findings), advice, m)
