"""kvorum against real etcd: the same workloads, the same client, one run, one machine.

    .venv/bin/python bench/server.py [--sizes 1,3] [--rounds 1] [--max-seconds 10]
                                     [--profile-seconds 10] [--json FILE]

For each cluster size and round, a fresh cluster of ``/usr/bin/etcd`` and then one of
``.venv/bin/kvorum`` (the order alternates between rounds) is started with
``kvorum.testing.Cluster`` (data under a temporary directory in /tmp); every workload is driven
against its leader by ``bench/server_client.py`` in a separate process (so the client's CPU is
never charged to the server), and the cluster is stopped before the next one starts. Workloads:
puts of 256-byte values to random keys at 1 client (sequential) and at 100 requests in flight;
linearizable and serializable gets at 100 in flight. Each is bounded in requests and in seconds.

Besides ops/s and latency, the leader's CPU use over each run is read from /proc: a leader near
100% of one core is bound by its own interpreter, one well below is waiting (on fsync, peers or
the client). With ``--profile-seconds`` > 0 and ``py-spy`` installed next to the interpreter,
the 100-client put workload is run once more on kvorum with py-spy sampling the leader (native
frames, idle threads included), and the samples are summarised per thread and per layer. That
extra run is not part of the figures, since sampling slows the process it samples.

Prints a markdown table of both servers and the ratio kvorum/etcd, and the command line. Every
process is started and ended by pid; SIGTERM or Ctrl-C still stops the clusters.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shlex
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

# Run as a script, this file's directory is on sys.path: the client's markers come from it.
from server_client import MARK_START, MARK_STOP

from kvorum.testing.cluster import Cluster, binary_for

CLIENT = Path(__file__).with_name("server_client.py")
SERVERS = ("etcd", "kvorum")
# Extra time a client process gets beyond its workload bound (start-up, warm-up, connection)
# before it is killed; a run that needs it is reported as failed, not waited on.
CLIENT_GRACE_S = 30.0
PROFILE_GRACE_S = 30.0
# Client start-up (imports, connections, warm-up) that the sampling waits out.
PROFILE_LEAD_S = 3.0
CLK_TCK = os.sysconf("SC_CLK_TCK")
# Samples of one thread below this share are left out of the per-thread summary.
THREAD_SHARE_MIN = 0.02
TOP_FUNCTIONS = 12
# Frames every main-thread sample passes through; listing them tells nothing.
ENTRY_FRAMES = ("(kvorum/cli.py)", "(kvorum/server/process.py)")


@dataclass(frozen=True, slots=True)
class Workload:
    """One client run: an operation, requests in flight, connections, and its request budget."""

    op: str
    clients: int
    conns: int
    max_ops: int

    @property
    def label(self) -> str:
        return f"{self.op}, {self.clients} client{'s' if self.clients > 1 else ''}"


WORKLOADS = (
    Workload("put", clients=1, conns=1, max_ops=5_000),
    Workload("put", clients=100, conns=10, max_ops=100_000),
    Workload("get-linearizable", clients=100, conns=10, max_ops=200_000),
    Workload("get-serializable", clients=100, conns=10, max_ops=200_000),
)
PROFILED = WORKLOADS[1]


@dataclass(frozen=True, slots=True)
class Measurement:
    """One workload on one cluster: the client's figures and the leader's CPU over the run."""

    server: str
    size: int
    workload: Workload
    client: dict[str, Any]
    leader_cpu_share: float  # CPU seconds of the leader process per wall-clock second
    members_cpu_share: float  # the same, summed over every member


@dataclass(slots=True)
class Report:
    measurements: list[Measurement] = field(default_factory=list)
    profile_lines: list[str] = field(default_factory=list)


# -- processes --------------------------------------------------------------------------------


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of process ``pid`` (all its threads), from /proc."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return float("nan")
    # The command name may hold spaces and parentheses; the fields after the last ")" do not.
    fields = stat.rsplit(")", 1)[1].split()
    utime, stime = int(fields[11]), int(fields[12])
    return (utime + stime) / CLK_TCK


def client_command(endpoint: str, w: Workload, args: argparse.Namespace, max_s: float) -> list[str]:
    return [
        sys.executable,
        str(CLIENT),
        "--endpoint", endpoint,
        "--op", w.op,
        "--clients", str(w.clients),
        "--conns", str(w.conns),
        "--max-ops", str(w.max_ops),
        "--max-seconds", str(max_s),
        "--value-bytes", str(args.value_bytes),
        "--key-space", str(args.key_space),
    ]  # fmt: skip


def client_result(returncode: int, stdout: str, stderr: str) -> dict[str, Any]:
    if returncode != 0:
        raise RuntimeError(f"client failed ({returncode}): {stderr.strip()[-2000:]}")
    result: dict[str, Any] = json.loads(stdout.strip().splitlines()[-1])
    return result


def run_client(
    endpoint: str, w: Workload, args: argparse.Namespace, pids: Sequence[int]
) -> tuple[dict[str, Any], list[float]]:
    """Run one workload in a fresh client process; return what it printed and the CPU share
    (CPU seconds per second) each of ``pids`` used over the client's measured window."""
    # stderr goes to a file: a pipe nobody reads while stdout is read could fill and block.
    with tempfile.TemporaryFile(mode="w+") as err_file:
        proc = subprocess.Popen(
            client_command(endpoint, w, args, args.max_seconds),
            stdout=subprocess.PIPE,
            stderr=err_file,
            text=True,
        )
        # An overrunning client is killed by its pid; its output then ends early and it fails.
        killer = threading.Timer(args.max_seconds + CLIENT_GRACE_S, proc.kill)
        killer.start()
        try:
            lines, shares = _read_client(proc, pids)
        finally:
            killer.cancel()
            if proc.poll() is None:
                proc.kill()
            proc.wait()
        err_file.seek(0)
        return client_result(proc.returncode, "".join(lines), err_file.read()), shares


def _read_client(proc: subprocess.Popen[str], pids: Sequence[int]) -> tuple[list[str], list[float]]:
    """The client's output lines, and the CPU share of each pid between its two markers."""
    assert proc.stdout is not None
    shares = [math.nan] * len(pids)
    before: list[float] = []
    started = 0.0
    lines: list[str] = []
    for line in proc.stdout:
        if line.strip() == MARK_START:
            before, started = [cpu_seconds(p) for p in pids], time.monotonic()
        elif line.strip() == MARK_STOP and before:
            wall_s = max(time.monotonic() - started, 1e-9)
            shares = [(cpu_seconds(p) - b) / wall_s for p, b in zip(pids, before, strict=True)]
        else:
            lines.append(line)
    return lines, shares


def measure(
    server: str, size: int, cluster: Cluster, w: Workload, args: argparse.Namespace
) -> Measurement:
    leader = cluster.member(cluster.wait_for_leader())
    pids = [m.pid for m in cluster.members]
    client, shares = run_client(leader.spec.client_address, w, args, pids)
    return Measurement(
        server=server,
        size=size,
        workload=w,
        client=client,
        leader_cpu_share=shares[leader.index],
        members_cpu_share=sum(shares),
    )


def py_spy_path() -> Path | None:
    candidate = Path(sys.executable).parent / "py-spy"
    if candidate.exists():
        return candidate
    found = shutil.which("py-spy")
    return Path(found) if found else None


def profile_leader(
    cluster: Cluster, args: argparse.Namespace, out_path: Path
) -> tuple[dict[str, Any], Path] | None:
    """Run PROFILED once more while py-spy samples the leader; None without py-spy."""
    spy = py_spy_path()
    if spy is None:
        print("py-spy not found next to the interpreter or on PATH: no profile", file=sys.stderr)
        return None
    leader = cluster.member(cluster.wait_for_leader())
    # The client starts first and runs longer than the sampling, which begins once the client
    # is past start-up and warm-up: every sample is taken under load.
    client_proc = subprocess.Popen(
        client_command(
            leader.spec.client_address, PROFILED, args, args.profile_seconds + PROFILE_LEAD_S + 2
        ),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    cmd = [
        str(spy), "record",
        "--pid", str(leader.pid),
        "--duration", str(math.ceil(args.profile_seconds)),
        "--rate", str(args.profile_rate),
        "--format", "raw",
        "--output", str(out_path),
        "--idle", "--threads", "--native", "--nolineno",
    ]  # fmt: skip
    out_path.unlink(missing_ok=True)
    try:
        time.sleep(PROFILE_LEAD_S)
        with out_path.with_suffix(".log").open("wb") as spy_log:
            sampled = subprocess.run(
                cmd,
                stdout=spy_log,
                stderr=subprocess.STDOUT,
                timeout=args.profile_seconds + PROFILE_GRACE_S,
                check=False,
            )
        out, err = client_proc.communicate(timeout=args.profile_seconds + PROFILE_GRACE_S)
    finally:
        if client_proc.poll() is None:
            client_proc.kill()  # by the Popen's pid
            client_proc.wait()
    client = client_result(client_proc.returncode, out, err)
    if sampled.returncode != 0 or not out_path.exists():
        print(f"py-spy failed; see {out_path.with_suffix('.log')}", file=sys.stderr)
        return None
    return client, out_path


# -- profile summary --------------------------------------------------------------------------

# Layers, tried in order against each frame from the innermost outwards; the first frame that
# matches any layer owns the sample ("self" time by layer). Native libc frames match nothing,
# so a sample in write() inside uvloop counts as the event loop's.
LAYERS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("fsync (WAL fdatasync)", ("fdatasync", "os_fsync", "fsync (")),
    ("LMDB / backend / mvcc", ("lmdb", "kvorum/backend/", "kvorum/mvcc/")),
    ("protobuf", ("google/protobuf", "_message.", "upb")),
    ("gRPC (C core + cython)", ("grpc/", "cygrpc", "libgrpc")),
    ("raft core", ("kvorum/raft/",)),
    ("WAL (Python)", ("kvorum/wal/",)),
    ("peer transport", ("kvorum/transport/",)),
    ("apply / watch / lease", ("kvorum/apply/", "kvorum/watch/", "kvorum/lease/")),
    ("server / API handlers", ("kvorum/",)),
    ("asyncio / uvloop", ("asyncio/", "loop.c", "uvloop", "libuv", "core.c", "linux.c")),
    ("threads / queues", ("threading.py", "concurrent/futures", "_queuemodule")),
)
# A thread parked in one of these (near the top of its stack) is idle: the event loop polling,
# the gRPC poller, a pool worker waiting for work.
IDLE_MARKERS = ("epoll_wait", "epoll_pwait", "_queue_SimpleQueue_get")
# A thread blocked on a condition variable right after a C call (sock_recv, fdatasync) that
# released the GIL is waiting to take the GIL back (CPython 3.11's take_gil is inlined away).
GIL_MARKERS = ("pthread_cond_timedwait", "pthread_cond_wait")
TOP_REGION_FRAMES = 4


@dataclass(frozen=True, slots=True)
class Sample:
    thread: str
    frames: tuple[str, ...]  # outermost first
    count: int


def parse_raw(text: str) -> Iterator[Sample]:
    """py-spy's raw (collapsed-stack) format: ``thread (tid): name;frame;...;frame COUNT``."""
    for line in text.splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        head, *frames = stack.split(";")
        thread = head.split(":", 1)[1].strip() if ":" in head else head
        yield Sample(thread=thread, frames=tuple(frames), count=int(count))


def layer_of(frames: Sequence[str]) -> str:
    """The layer a sample's self time belongs to; idle and GIL waits are layers of their own."""
    top = frames[-TOP_REGION_FRAMES:]
    if "_WorkItem.run" not in " ".join(frames) and any(m in f for f in top for m in IDLE_MARKERS):
        return "idle (poll / waiting for work)"
    if any(m in f for f in top[-3:] for m in GIL_MARKERS):
        return "waiting for the GIL"
    for frame in reversed(frames):
        for layer, needles in LAYERS:
            if any(n in frame for n in needles):
                return layer
    return "other native"


def thread_kind(name: str) -> str:
    """Threads named after their role; numbered pool workers are merged by their prefix."""
    if name.startswith("MainThread"):
        return "main (event loop)"
    if "_poll_wrapper" in name:
        return "gRPC poller"
    return name.rstrip("0123456789_ ") or name


def summarise(text: str) -> list[str]:
    """Markdown lines: per-thread busy share and layers, then the top kvorum functions."""
    samples = list(parse_raw(text))
    per_thread: dict[str, Counter[str]] = {}
    inclusive: Counter[str] = Counter()
    main_total = 0
    for s in samples:
        kind = thread_kind(s.thread)
        per_thread.setdefault(kind, Counter())[layer_of(s.frames)] += s.count
        if kind.startswith("main"):
            main_total += s.count
            if layer_of(s.frames).startswith("idle"):
                continue
            for fn in {f for f in s.frames if "kvorum/" in f and not f.endswith(ENTRY_FRAMES)}:
                inclusive[fn] += s.count
    all_total = sum(s.count for s in samples)
    lines = [
        "| thread | layer (self time) | of the thread's samples | of its busy samples |",
        "|---|---|---|---|",
    ]
    for kind, layers in sorted(per_thread.items(), key=lambda kv: -kv[1].total()):
        total = layers.total()
        busy = sum(n for layer, n in layers.items() if not layer.startswith("idle"))
        if total / max(all_total, 1) < THREAD_SHARE_MIN:
            continue
        for layer, n in layers.most_common():
            if n / total >= THREAD_SHARE_MIN:
                of_busy = "" if layer.startswith("idle") else f"{100 * n / max(busy, 1):.0f}%"
                lines.append(f"| {kind} | {layer} | {100 * n / total:.0f}% | {of_busy} |")
    lines += [
        "",
        f"Main thread, busy samples, inclusive, top {TOP_FUNCTIONS} kvorum functions:",
        "",
    ]
    lines += ["| function | share of all main-thread samples |", "|---|---|"]
    for fn, n in inclusive.most_common(TOP_FUNCTIONS):
        lines.append(f"| `{fn}` | {100 * n / max(main_total, 1):.0f}% |")
    return lines


# -- report -----------------------------------------------------------------------------------


def _ratio(a: float, b: float) -> str:
    if not b or math.isnan(a) or math.isnan(b):
        return "n/a"
    return f"{a / b:.2f}"


def _median(values: Sequence[float]) -> float:
    return statistics.median(values) if values else math.nan


def _cpu_us_per_op(ms: Sequence[Measurement]) -> float:
    """The leader's CPU time per request, median over rounds: unlike ops/s, it hardly moves
    with the load other processes put on the machine, so it is the steadier figure to compare."""
    return _median(
        [1e6 * m.leader_cpu_share / m.client["ops_per_s"] for m in ms if m.client["ops_per_s"]]
    )


def table(measurements: Sequence[Measurement]) -> list[str]:
    """One row per (size, workload): both servers side by side and kvorum/etcd; with several
    rounds, each figure is the median over rounds and the ratio column also gives the range of
    the per-round ratios (each round runs both servers back to back)."""
    runs: dict[tuple[str, int, Workload], list[Measurement]] = {}
    for m in measurements:
        runs.setdefault((m.server, m.size, m.workload), []).append(m)
    lines = [
        "| members | workload | etcd ops/s | etcd p50 / p99 ms | kvorum ops/s "
        "| kvorum p50 / p99 ms | ops/s ratio | leader CPU etcd / kvorum "
        "| leader CPU µs per op etcd / kvorum |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for size in sorted({m.size for m in measurements}):
        for w in WORKLOADS:
            e, k = runs.get(("etcd", size, w), []), runs.get(("kvorum", size, w), [])
            if not e or not k:
                continue

            def med(ms: list[Measurement], key: str) -> float:
                return _median([float(m.client[key]) for m in ms])

            ratio = _ratio(med(k, "ops_per_s"), med(e, "ops_per_s"))
            if len(e) > 1 and len(e) == len(k):
                per_round = sorted(
                    km.client["ops_per_s"] / em.client["ops_per_s"]
                    for em, km in zip(e, k, strict=True)
                    if em.client["ops_per_s"]
                )
                if per_round:
                    ratio += f" ({per_round[0]:.2f} to {per_round[-1]:.2f})"
            e_cpu = _median([m.leader_cpu_share for m in e])
            k_cpu = _median([m.leader_cpu_share for m in k])
            lines.append(
                f"| {size} | {w.label} | {med(e, 'ops_per_s'):,.0f} "
                f"| {med(e, 'p50_ms'):.1f} / {med(e, 'p99_ms'):.1f} | {med(k, 'ops_per_s'):,.0f} "
                f"| {med(k, 'p50_ms'):.1f} / {med(k, 'p99_ms'):.1f} | {ratio} "
                f"| {100 * e_cpu:.0f}% / {100 * k_cpu:.0f}% "
                f"| {_cpu_us_per_op(e):.0f} / {_cpu_us_per_op(k):.0f} |"
            )
    return lines


def run_server(
    server: str, size: int, base_dir: Path, args: argparse.Namespace, report: Report, round_: int
) -> None:
    data_dir = base_dir / f"{server}-{size}-{round_}"
    print(
        f"# {server}, {size} member(s), round {round_ + 1}/{args.rounds}, data under {data_dir}",
        file=sys.stderr,
    )
    with Cluster(binary_for(server), size, base_dir=data_dir) as cluster:
        for w in WORKLOADS:
            m = measure(server, size, cluster, w, args)
            report.measurements.append(m)
            c = m.client
            print(
                f"  {w.label:28} {c['ops_per_s']:>9,.0f} ops/s  p50 {c['p50_ms']:7.2f} ms  "
                f"p99 {c['p99_ms']:7.2f} ms  errors {c['errors']}  "
                f"leader CPU {100 * m.leader_cpu_share:.0f}%  "
                f"all members {100 * m.members_cpu_share:.0f}%  client CPU "
                f"{100 * c['client_cpu_s'] / max(c['elapsed_s'], 1e-9):.0f}%",
                file=sys.stderr,
            )
            if c["errors"]:
                print(f"    first error: {c['first_error']}", file=sys.stderr)
        last = size == max(args.sizes) and round_ == args.rounds - 1
        if server == "kvorum" and last and args.profile_seconds > 0:
            report.profile_lines = profile_section(cluster, args)


def profile_section(cluster: Cluster, args: argparse.Namespace) -> list[str]:
    """The profile run on kvorum's leader, as markdown lines (none if it could not run)."""
    profiled = profile_leader(cluster, args, Path(args.profile_out))
    if profiled is None:
        return []
    client, path = profiled
    lines = [
        f"Profile: py-spy, {args.profile_seconds:g} s at {args.profile_rate} Hz on the leader "
        f"of {cluster.size} kvorum members during `{PROFILED.label}` "
        f"({client['ops_per_s']:,.0f} ops/s while sampled); raw stacks in {path}.",
        "",
        *summarise(path.read_text()),
    ]
    if "behind in sampling" in path.with_suffix(".log").read_text():
        lines.insert(1, "(py-spy fell behind its sampling rate: shares are approximate.)")
    return lines


def parse_args(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--sizes", default="1,3", help="cluster sizes, comma-separated (1, 3 or 5)")
    p.add_argument("--max-seconds", type=float, default=10.0, help="time bound per workload")
    p.add_argument("--rounds", type=int, default=1, help="both servers, this many times (medians)")
    p.add_argument("--value-bytes", type=int, default=256)
    p.add_argument("--key-space", type=int, default=10_000)
    p.add_argument("--profile-seconds", type=float, default=10.0, help="0: no profile")
    p.add_argument("--profile-rate", type=int, default=50, help="py-spy samples per second")
    p.add_argument("--profile-out", default="/tmp/kvorum-bench-server-profile.raw")
    p.add_argument("--json", help="also write every measurement to this file")
    args = p.parse_args(argv)
    args.sizes = sorted({int(s) for s in args.sizes.split(",")})
    if not 1 <= args.rounds <= 5:
        p.error("--rounds must be in [1, 5]")
    if not 0 < args.max_seconds <= 15:
        p.error("--max-seconds must be in (0, 15]")
    return args


def _exit_on_sigterm(signum: int, frame: object) -> None:
    # SystemExit unwinds through the `with Cluster` blocks, which end the members by pid.
    raise SystemExit(128 + signum)


def main(argv: list[str] | None = None) -> int:
    raw_argv = sys.argv[1:] if argv is None else argv
    args = parse_args(raw_argv)
    signal.signal(signal.SIGTERM, _exit_on_sigterm)
    base_dir = Path(tempfile.mkdtemp(prefix="kvorum-bench-server-", dir="/tmp"))
    report = Report()
    load_before = os.getloadavg()[0]
    try:
        for size in args.sizes:
            for round_ in range(args.rounds):
                # Alternate the order, so a drift in machine load favours neither server.
                for server in SERVERS if round_ % 2 == 0 else SERVERS[::-1]:
                    run_server(server, size, base_dir, args, report, round_)
                # A fresh cluster per round; the old data would only fill /tmp.
                for server in SERVERS:
                    shutil.rmtree(base_dir / f"{server}-{size}-{round_}", ignore_errors=True)
    finally:
        shutil.rmtree(base_dir, ignore_errors=True)
    command = shlex.join([".venv/bin/python", "bench/server.py", *raw_argv])
    print(
        f"Command: `{command}` (load average {load_before:.1f} before, "
        f"{os.getloadavg()[0]:.1f} after; {os.cpu_count()} cores)\n"
    )
    print("\n".join(table(report.measurements)))
    if report.profile_lines:
        print()
        print("\n".join(report.profile_lines))
    if args.json:
        Path(args.json).write_text(
            json.dumps(
                [
                    {
                        "server": m.server,
                        "size": m.size,
                        "workload": m.workload.label,
                        "leader_cpu_share": m.leader_cpu_share,
                        "members_cpu_share": m.members_cpu_share,
                        **m.client,
                    }
                    for m in report.measurements
                ],
                indent=1,
            )
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
