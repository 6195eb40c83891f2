"""One fault-injection run: a real cluster, client workers, a nemesis, then the checks.

``run_faults(plan, base_dir)`` starts ``plan.size`` members of etcd or kvorum (each in its own
network namespace when the plan needs partitions), runs `Worker`s against them while a nemesis
injects and heals faults, heals everything, and then checks:

1. linearizability of the recorded history, per key (``kvorum.check``), including one final
   linearizable read per key after the heal: an acknowledged write that was lost leaves a read
   no linearization explains;
2. convergence: every member reports the same HashKV at the same revision;
3. a cut-off minority never acknowledged anything: the workers pinned to it while it was cut
   off recorded only ``fail`` / ``unknown``.

The nemesis follows a schedule drawn from ``random.Random(seed)`` and printed before the run;
targets named by role ("the leader") are resolved when the fault is injected, and the log of
what was done is kept next to the history. It lives in ``tests/faults`` rather than
``kvorum/testing``: it needs root for namespaces and is test machinery, not a shipped API.
"""

from __future__ import annotations

import functools
import json
import os
import random
import shutil
import signal
import threading
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc

from kvorum.api.pb.etcdserverpb import rpc_pb2, rpc_pb2_grpc
from kvorum.check.history import parse_history
from kvorum.check.linearizability import CheckResult, Verdict, check_operations
from kvorum.check.report import format_result
from kvorum.testing.cluster import Cluster, ClusterStartError
from tests.faults.netns import MemberNetwork, netns_unavailable_reason
from tests.faults.workload import WRITE_TIMEOUT_S, History, Worker

# Every fault kind the scheduled nemesis knows. "-leader" variants aim at the member that
# leads when the fault is injected; the others at a member drawn from the seed.
NEMESES = (
    "kill",
    "kill-leader",
    "pause",
    "pause-leader",
    "partition",
    "partition-leader",
    "partition-minority",
    "transfer",
    "replace",
)
NETWORK_NEMESES = frozenset({"partition", "partition-leader", "partition-minority"})

KEYS = tuple(f"k{i}" for i in range(5))
WORKERS = 4
WARMUP_S = 1.0
HOLD_S = (1.0, 2.5)
QUIET_S = (1.0, 2.0)
HEAL_TIMEOUT_S = 60.0
CONVERGE_TIMEOUT_S = 30.0
WORKER_JOIN_TIMEOUT_S = WRITE_TIMEOUT_S + 5.0
FINAL_READ_ATTEMPTS = 20
CHECK_TIMEOUT_S = 120.0
RPC_TIMEOUT_S = 2.0
RESULTS_ENV = "KVORUM_FAULTS_RESULTS"
# A failed run's directory (history, logs, data dirs) is copied here: pytest keeps only its
# last few base temp dirs, and a shared machine runs through them in minutes.
KEEP_DIR_ENV = "KVORUM_FAULTS_KEEP_DIR"
DEFAULT_KEEP_DIR = "/tmp/kvorum-faults-failed"
REMOVE_TIMEOUT_S = 15.0
# After the workers are held back: enough for requests in flight on a healthy cluster.
QUIET_SETTLE_S = 0.5
_RECONFIGURE_REFUSALS = ("unhealthy cluster", "not enough started members")
RECONFIGURE_TIMEOUT_S = 30.0
RECONFIGURE_RETRY_S = 1.0


@dataclass(frozen=True, slots=True)
class Fault:
    """One scheduled fault: injected ``at_s`` after the workload starts, healed after ``hold_s``."""

    at_s: float
    kind: str
    hold_s: float
    draw: int  # the seed's pick among members, for kinds that are not aimed at the leader

    def __str__(self) -> str:
        return f"t+{self.at_s:5.2f}s {self.kind:<18} hold {self.hold_s:.2f}s draw {self.draw}"


def make_schedule(seed: int, nemeses: Sequence[str], duration_s: float, size: int) -> list[Fault]:
    """Faults one after another until ``duration_s``, each followed by a quiet spell.

    Kinds come in rounds, each a shuffle of ``nemeses``: a short run still sees every kind.
    """
    rng = random.Random(seed)
    faults: list[Fault] = []
    at = WARMUP_S
    round_left: list[str] = []
    while True:
        if not round_left:
            round_left = list(nemeses)
            rng.shuffle(round_left)
        kind = round_left.pop()
        hold = 0.0 if kind == "transfer" else round(rng.uniform(*HOLD_S), 2)
        if faults and at + hold > duration_s:
            break
        faults.append(Fault(round(at, 2), kind, hold, rng.randrange(size)))
        at += hold + rng.uniform(*QUIET_S)
        if at > duration_s:
            break
    return faults


@dataclass
class Plan:
    """What one run does. ``nemesis`` None: the scheduled nemesis over ``nemeses``."""

    target: str
    command: Sequence[str]
    size: int = 3
    nemeses: Sequence[str] = ("kill",)
    duration_s: float = 8.0
    seed: int = 1
    workers: int = WORKERS
    keys: Sequence[str] = KEYS
    serializable: bool = False
    extra_flags: Sequence[str] = ()
    env: dict[str, str] = field(default_factory=dict)
    nemesis: Callable[[RunContext], None] | None = None
    # None: whenever namespaces can be made here. Members in namespaces of their own listen on
    # addresses no other test can take, whereas a loopback port freed by a killed member may
    # be handed to another test's cluster (the kernel reuses freshly closed ports) before the
    # member restarts -- and clients would then talk to a stranger.
    netns: bool | None = None

    @property
    def uses_netns(self) -> bool:
        if self.netns is not None:
            return self.netns
        return any(n in NETWORK_NEMESES for n in self.nemeses) or netns_usable()


@dataclass
class RunResult:
    plan: Plan
    base_dir: Path
    history_path: Path
    schedule: list[Fault]
    nemesis_log: list[str]
    faults_done: Counter[str]
    op_counts: Counter[str]
    check: CheckResult
    report: str
    converged: dict[int, tuple[int, int]] | None  # member -> (revision, hash)
    minority_acks: list[dict[str, Any]]
    nemesis_error: str | None
    elapsed_s: float
    foreign_answers: int = 0  # answers from another cluster on a reused port: recorded as fail

    @property
    def ok(self) -> bool:
        return (
            self.check.verdict is Verdict.OK
            and self.converged is not None
            and not self.minority_acks
            and self.nemesis_error is None
        )

    def summary(self) -> str:
        ops = ", ".join(f"{k}={v}" for k, v in sorted(self.op_counts.items()))
        faults = ", ".join(f"{k}x{v}" for k, v in sorted(self.faults_done.items())) or "none"
        return (
            f"{self.plan.target} size={self.plan.size} seed={self.plan.seed} "
            f"duration={self.plan.duration_s:g}s faults[{faults}] ops[{ops}] "
            f"linearizability={self.check.verdict.value} "
            f"converged={'yes' if self.converged else 'NO'} "
            f"minority_acks={len(self.minority_acks)} foreign={self.foreign_answers} "
            f"elapsed={self.elapsed_s:.1f}s"
        )

    def failure_message(self) -> str:
        lines = [
            "fault run FAILED: " + self.summary(),
            f"  seed: {self.plan.seed} (KVORUM_FAULTS_SEED={self.plan.seed} replays the schedule)",
            f"  history: {self.history_path}",
            f"  member logs and nemesis log: {self.base_dir}",
        ]
        if self.nemesis_error:
            lines.append(f"  nemesis error: {self.nemesis_error}")
        if self.converged is None:
            lines.append("  members did not converge to one HashKV at one revision")
        for record in self.minority_acks[:5]:
            lines.append(f"  a cut-off member acknowledged: {json.dumps(record)}")
        lines.append("  schedule and what was done:")
        lines.extend(f"    {line}" for line in self.nemesis_log)
        lines.append(self.report)
        return "\n".join(lines)


class RunContext:
    """What a nemesis may touch: the cluster, the network, the clock, the log, pinned workers."""

    def __init__(
        self,
        plan: Plan,
        cluster: Cluster,
        network: MemberNetwork | None,
        history: History,
        stop: threading.Event,
    ) -> None:
        self.plan = plan
        self.cluster = cluster
        self.network = network
        self.history = history
        self.stop = stop
        self.started_ns = time.monotonic_ns()
        self.log_lines: list[str] = []
        self.faults_done: Counter[str] = Counter()
        self.pinned_processes: list[str] = []
        self._pinned_count = 0
        # Open (set) while the workers may send; `quiet` closes it for a while.
        self.gate = threading.Event()
        self.gate.set()
        self.cluster_id = int(cluster.status(0, RPC_TIMEOUT_S).header.cluster_id)

    def log(self, text: str) -> None:
        line = f"t+{(time.monotonic_ns() - self.started_ns) / 1e9:6.2f}s {text}"
        self.log_lines.append(line)
        print(f"[nemesis] {line}", flush=True)

    def sleep_until(self, at_s: float) -> bool:
        """Sleep until ``at_s`` after the start; False if the run is being stopped."""
        delay = self.started_ns / 1e9 + at_s - time.monotonic_ns() / 1e9
        return not self.stop.wait(max(delay, 0.0))

    def leader(self) -> int:
        return self.cluster.wait_for_leader(HEAL_TIMEOUT_S)

    def member_id(self, index: int) -> int:
        return int(self.cluster.status(index, RPC_TIMEOUT_S).header.member_id)

    def wait_healthy(self) -> None:
        self.cluster.wait_healthy(HEAL_TIMEOUT_S)
        require_all_running(self.cluster)

    def quiet(self) -> None:
        """Hold the workers back (requests in flight end within their deadline)."""
        self.gate.clear()
        self.stop.wait(QUIET_SETTLE_S)

    def resume(self) -> None:
        self.gate.set()

    def start_pinned(self, members: Sequence[int]) -> tuple[threading.Event, list[Worker]]:
        """Workers that talk only to ``members`` (cut off): they must never see an ``ok``."""
        stop = threading.Event()
        workers = []
        for index in members:
            self._pinned_count += 1
            process = f"pinned{self._pinned_count}"
            self.pinned_processes.append(process)
            worker = Worker(
                process,
                [m.spec.client_address for m in self.cluster.members],
                self.history,
                stop,
                keys=self.plan.keys,
                seed=self.plan.seed,
                start_member=index,
                pinned=True,
                mix=(("read", 1), ("write", 1), ("cas", 1)),
                cluster_id=self.cluster_id,
            )
            worker.start()
            workers.append(worker)
        return stop, workers

    @staticmethod
    def stop_pinned(stop: threading.Event, workers: Sequence[Worker]) -> None:
        stop.set()
        for worker in workers:
            worker.join(WORKER_JOIN_TIMEOUT_S)
            assert not worker.is_alive(), f"{worker.name} did not stop"


@functools.cache
def netns_usable() -> bool:
    return netns_unavailable_reason() is None


# -- the scheduled nemesis -----------------------------------------------------------------


def scheduled_nemesis(schedule: Sequence[Fault]) -> Callable[[RunContext], None]:
    def run(ctx: RunContext) -> None:
        for fault in schedule:
            if not ctx.sleep_until(fault.at_s):
                return
            inject(ctx, fault)
            if ctx.stop.is_set():
                return

    return run


def inject(ctx: RunContext, fault: Fault) -> None:
    """Inject one fault, hold it, heal it, and wait until every member serves again."""
    c = ctx.cluster
    size = c.size
    aimed_at_leader = fault.kind.endswith("-leader") or fault.kind == "transfer"
    target = ctx.leader() if aimed_at_leader else fault.draw
    kind = fault.kind.removesuffix("-leader")
    if kind == "kill":
        ctx.log(f"kill -9 {c.member(target).name} (pid {c.member(target).pid}) [{fault.kind}]")
        c.kill(target, signal.SIGKILL)
        ctx.stop.wait(fault.hold_s)
        c.restart(target, wait=False)
        ctx.log(f"restarted {c.member(target).name} (pid {c.member(target).pid})")
    elif kind == "pause":
        ctx.log(f"SIGSTOP {c.member(target).name} [{fault.kind}]")
        c.kill(target, signal.SIGSTOP)
        ctx.stop.wait(fault.hold_s)
        c.kill(target, signal.SIGCONT)
        ctx.log(f"SIGCONT {c.member(target).name}")
    elif kind in ("partition", "partition-minority"):
        assert ctx.network is not None, "a partition needs the plan's network namespaces"
        if kind == "partition-minority":
            minority = sorted({fault.draw, (fault.draw + 1) % size})[: (size - 1) // 2]
        else:
            minority = [target]
        ctx.network.isolate(minority)
        ctx.log(f"partition: {minority} cut off from {ctx.network.groups[0]} [{fault.kind}]")
        pinned_stop, pinned = ctx.start_pinned(minority)
        ctx.stop.wait(fault.hold_s)
        ctx.stop_pinned(pinned_stop, pinned)
        ctx.network.heal()
        ctx.log("partition healed")
    elif kind == "replace":
        replace_member(ctx, target, fault.hold_s)
    elif kind == "transfer":
        followers = [i for i in range(size) if i != target and c.member(i).live]
        if not followers:
            ctx.log("transfer skipped: no live follower")
            return
        to = followers[fault.draw % len(followers)]
        ctx.log(f"move-leader {c.member(target).name} -> {c.member(to).name}")
        try:
            c.member(target).maintenance_stub().MoveLeader(
                rpc_pb2.MoveLeaderRequest(targetID=ctx.member_id(to)), timeout=10.0
            )
        except grpc.RpcError as err:
            # Leadership may have moved on its own meanwhile; not a failure of the system.
            ctx.log(f"move-leader answered {err.code().name}: {err.details()}")
    else:
        raise ValueError(f"unknown fault kind {fault.kind!r}")
    ctx.faults_done[fault.kind] += 1
    ctx.wait_healthy()
    ctx.log("healthy again")


def replace_member(ctx: RunContext, index: int, hold_s: float) -> None:
    """Remove member ``index`` under load, then add it back as a new member, empty data dir.

    Removed, the member stops itself (etcd: "the member has been permanently removed"); it
    comes back with the same name and URLs but a new member id, joining with
    ``-initial-cluster-state existing`` and learning everything from the leader.
    """
    c = ctx.cluster
    m = c.member(index)
    old_id = ctx.member_id(index)
    ctx.log(f"member remove {m.name} ({old_id:x})")
    try:
        _reconfigure(ctx, "MemberRemove", rpc_pb2.MemberRemoveRequest(ID=old_id))
        answered = True
    except grpc.RpcError as err:
        # A leader removing itself may stop before its answer leaves: the outcome is known
        # only once the member has stopped itself (below).
        ctx.log(f"MemberRemove got no answer ({err.code().name}: {err.details()})")
        answered = False
    deadline = time.monotonic() + REMOVE_TIMEOUT_S
    while m.running and time.monotonic() < deadline:
        time.sleep(0.05)
    if m.running:
        if not answered:
            raise AssertionError(f"{m.name} neither confirmed removed nor stopped")
        ctx.log(f"{m.name} still running after its removal; SIGKILL")
        c.kill(index, signal.SIGKILL)
    else:
        ctx.log(f"{m.name} stopped itself (status {m.returncode})")
    ctx.stop.wait(hold_s)
    shutil.rmtree(m.spec.data_dir, ignore_errors=True)
    m.command = tuple("existing" if arg == "new" else arg for arg in m.command)
    added = _reconfigure(ctx, "MemberAdd", rpc_pb2.MemberAddRequest(peerURLs=[m.spec.peer_url]))
    ctx.log(f"member add {m.name} -> new id {added.member.ID:x}; starting it empty")
    c.restart(index, wait=False)


def _reconfigure(ctx: RunContext, method: str, request: Any) -> Any:
    """A Cluster RPC through the current leader, asked again while the strict check refuses.

    Through the leader (even to remove itself; tests/faults/test_reconfigure_via_follower.py
    covers removals through a follower). etcd refuses a change while some member has been
    connected for less than 5 s -- as every member just added or restarted has ("unhealthy
    cluster"; kvorum counts a member once connected, without the 5 s): a definite refusal,
    nothing was proposed.
    """
    deadline = time.monotonic() + RECONFIGURE_TIMEOUT_S
    while True:
        leader = ctx.cluster.member(ctx.leader())
        with grpc.insecure_channel(leader.spec.client_address) as channel:
            stub = rpc_pb2_grpc.ClusterStub(channel)  # type: ignore[no-untyped-call]
            try:
                return getattr(stub, method)(request, timeout=REMOVE_TIMEOUT_S)
            except grpc.RpcError as err:
                details = err.details() or ""
                refused = any(text in details for text in _RECONFIGURE_REFUSALS)
                if not refused or time.monotonic() > deadline:
                    raise
                ctx.log(f"{method} refused by {leader.name} ({details}); asking again")
        ctx.stop.wait(RECONFIGURE_RETRY_S)


def heal_all(cluster: Cluster, network: MemberNetwork | None) -> None:
    """Undo every fault: network whole, paused members continued, dead members restarted."""
    if network is not None:
        network.heal()
    for m in cluster.members:
        if m.paused:
            cluster.kill(m.index, signal.SIGCONT)
        if not m.running:
            cluster.restart(m.index, wait=False)
    cluster.wait_healthy(HEAL_TIMEOUT_S)
    require_all_running(cluster)


def require_all_running(cluster: Cluster) -> None:
    """Every member is up: one that exited (``wait_healthy`` only asks live ones) fails the run
    with its log -- a port taken while it was down ("address already in use") shows there."""
    for m in cluster.members:
        if not m.running:
            raise ClusterStartError(
                f"{m.name} exited (status {m.returncode}) after its restart:\n{m.log_tail(15)}"
            )


# -- checks ----------------------------------------------------------------------------------


def final_reads(cluster: Cluster, keys: Sequence[str], history: History, cluster_id: int) -> None:
    """One linearizable read per key after the heal, recorded as process ``final``."""
    for n, key in enumerate(keys):
        for attempt in range(FINAL_READ_ATTEMPTS):
            index = (n + attempt) % cluster.size
            invoke = time.monotonic_ns()
            try:
                response = (
                    cluster.member(index)
                    .kv_stub()
                    .Range(rpc_pb2.RangeRequest(key=key.encode()), timeout=RPC_TIMEOUT_S)
                )
            except grpc.RpcError:
                time.sleep(0.1)
                continue
            assert response.header.cluster_id == cluster_id, (
                f"{cluster.member(index).name}'s address answers for another cluster"
            )
            value = response.kvs[0].value.decode() if response.kvs else None
            history.add(
                {"process": "final", "op": "read", "key": key, "invoke_ns": invoke,
                 "complete_ns": time.monotonic_ns(), "outcome": "ok", "output": value,
                 "revision": response.header.revision, "member": index}
            )  # fmt: skip
            break
        else:
            raise AssertionError(f"no member answered the final read of {key!r}")


def member_hashes(cluster: Cluster, cluster_id: int) -> dict[int, tuple[int, int]] | None:
    """(revision, HashKV) of every member of ``cluster_id``, once all answer the same pair."""
    seen: dict[int, tuple[int, int]] = {}
    for m in cluster.members:
        try:
            response = m.maintenance_stub().HashKV(
                rpc_pb2.HashKVRequest(revision=0), timeout=RPC_TIMEOUT_S
            )
        except grpc.RpcError:
            return None
        if response.header.cluster_id != cluster_id:
            return None
        seen[m.index] = (int(response.header.revision), int(response.hash))
    return seen if len(set(seen.values())) == 1 else None


def wait_converged(cluster: Cluster, cluster_id: int) -> dict[int, tuple[int, int]] | None:
    deadline = time.monotonic() + CONVERGE_TIMEOUT_S
    while time.monotonic() < deadline:
        hashes = member_hashes(cluster, cluster_id)
        if hashes is not None:
            return hashes
        time.sleep(0.2)
    return None


def minority_acknowledgements(
    records: Sequence[dict[str, Any]], pinned: Sequence[str]
) -> list[dict[str, Any]]:
    """Every ``ok`` a worker pinned to a cut-off member saw: each is a violation."""
    names = set(pinned)
    return [r for r in records if r["process"] in names and r["outcome"] == "ok"]


def check_history(path: Path) -> tuple[CheckResult, str]:
    ops = parse_history(path.read_text().splitlines())
    result = check_operations(ops, timeout_s=CHECK_TIMEOUT_S)
    return result, format_result(result)


# -- a whole run -----------------------------------------------------------------------------


def run_faults(plan: Plan, base_dir: Path) -> RunResult:
    started = time.monotonic()
    base_dir.mkdir(parents=True, exist_ok=True)
    schedule = (
        make_schedule(plan.seed, plan.nemeses, plan.duration_s, plan.size)
        if plan.nemesis is None
        else []
    )
    header = (
        f"fault run: target={plan.target} size={plan.size} seed={plan.seed} "
        f"duration={plan.duration_s:g}s nemeses={','.join(plan.nemeses)} base_dir={base_dir}"
    )
    print(header, flush=True)
    for fault in schedule:
        print(f"  scheduled: {fault}", flush=True)
    nemesis = plan.nemesis or scheduled_nemesis(schedule)
    network = MemberNetwork(plan.size).create() if plan.uses_netns else None
    history = History()
    nemesis_error: str | None = None
    try:
        cluster = Cluster(
            plan.command,
            plan.size,
            base_dir=base_dir,
            extra_flags=plan.extra_flags,
            env=plan.env,
            member_hosts=network.hosts if network is not None else None,
        )
        with cluster:
            stop = threading.Event()
            ctx = RunContext(plan, cluster, network, history, stop)
            addresses = [m.spec.client_address for m in cluster.members]
            workers = [
                Worker(
                    w,
                    addresses,
                    history,
                    stop,
                    keys=plan.keys,
                    seed=plan.seed,
                    start_member=w,
                    serializable=plan.serializable,
                    gate=ctx.gate,
                    cluster_id=ctx.cluster_id,
                )
                for w in range(plan.workers)
            ]
            for worker in workers:
                worker.start()

            def drive() -> None:
                nonlocal nemesis_error
                try:
                    nemesis(ctx)
                except Exception as exc:  # reported with the run, not lost in a thread
                    nemesis_error = f"{type(exc).__name__}: {exc}"
                    ctx.log(f"nemesis failed: {nemesis_error}")

            driver = threading.Thread(target=drive, name="nemesis", daemon=True)
            driver.start()
            driver.join(plan.duration_s + HEAL_TIMEOUT_S * 2)
            # The workload runs at least the planned duration, nemesis or not.
            stop.wait(max(0.0, ctx.started_ns / 1e9 + plan.duration_s - time.monotonic()))
            stop.set()
            driver.join(HEAL_TIMEOUT_S)
            for worker in workers:
                worker.join(WORKER_JOIN_TIMEOUT_S)
            foreign_answers = sum(w.foreign_answers for w in workers)
            stuck = [w.name for w in workers if w.is_alive()]
            assert not stuck, f"workers did not stop: {stuck}"
            heal_all(cluster, network)
            ctx.log("all healed")
            final_reads(cluster, plan.keys, history, ctx.cluster_id)
            converged = wait_converged(cluster, ctx.cluster_id)
            records = history.records
    finally:
        if network is not None:
            network.close()

    history_path = base_dir / "history.jsonl"
    with history_path.open("w") as out:
        for record in records:
            out.write(json.dumps(record) + "\n")
    (base_dir / "nemesis.log").write_text(
        "\n".join([header, *(f"scheduled: {f}" for f in schedule), *ctx.log_lines]) + "\n"
    )
    check, report = check_history(history_path)
    (base_dir / "check.txt").write_text(report + "\n")
    result = RunResult(
        plan=plan,
        base_dir=base_dir,
        history_path=history_path,
        schedule=schedule,
        nemesis_log=ctx.log_lines,
        faults_done=ctx.faults_done,
        op_counts=Counter(f"{r['op']}:{r['outcome']}" for r in records),
        check=check,
        report=report,
        converged=converged,
        minority_acks=minority_acknowledgements(records, ctx.pinned_processes),
        nemesis_error=nemesis_error,
        elapsed_s=time.monotonic() - started,
        foreign_answers=foreign_answers,
    )
    if not result.ok:
        keep_root = Path(os.environ.get(KEEP_DIR_ENV) or DEFAULT_KEEP_DIR)
        kept = keep_root / f"{plan.target}-{plan.size}-seed{plan.seed}-{time.strftime('%H%M%S')}"
        shutil.copytree(base_dir, kept, dirs_exist_ok=True)
        result.base_dir = kept
        result.history_path = kept / "history.jsonl"
    print(result.summary(), flush=True)
    results_file = os.environ.get(RESULTS_ENV)
    if results_file:
        with open(results_file, "a") as out:
            out.write(json.dumps({"summary": result.summary(), "ok": result.ok}) + "\n")
    return result
