"""``check perf``: etcdctl 3.4's performance check, with its loads, texts and verdicts.

The check writes at a fixed rate for a fixed time from many clients -- 256-byte keys under
``--prefix`` (a random varint in a zeroed key), 1 KiB zero values -- then deletes the prefix,
optionally compacts and defragments, and judges what it measured:

- throughput above 90 % of the load's rate,
- slowest request at most 0.5 s,
- standard deviation of the latencies at most 0.1 s,
- no errors.

Each criterion prints a PASS line or its failure, then ``PASS`` or ``FAIL`` (exit 1).

etcdctl fixes the duration at 60 s. ``KVORUMCTL_CHECK_PERF_DURATION_S`` shortens it (not an
etcdctl flag: it exists so tests can run the real command in seconds); ``run_check`` takes the
duration as an argument for the same reason. Requests are issued by a bounded pool of threads,
one connection each (etcdctl opens one client per simulated client; past
``WORKERS_MAX`` threads kvorumctl shares them, which only matters for the m/l/xl loads).

Difference from etcdctl: its progress bar goes to stdout, always; kvorumctl's goes to stderr
and only to a terminal, so the output of a piped run is only the verdict lines.
"""

from __future__ import annotations

import math
import queue
import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import BinaryIO

from kvorum.api.pb.etcdserverpb import rpc_pb2
from kvorum.ctl import progress
from kvorum.ctl._conn import CallError, Conn
from kvorum.ctl.commands.kv import call_failed
from kvorum.ctl.commands.spec import Command, Context
from kvorum.ctl.errors import EXIT_BAD_FEATURE, EXIT_ERROR, EXIT_INVALID_INPUT, CtlExit
from kvorum.ctl.flags import FlagSpec
from kvorum.ctl.gofmt import go_quote

__all__ = [
    "CHECK",
    "DURATION_ENV",
    "LOADS",
    "PerfLoad",
    "PerfStats",
    "judge",
    "prefix_end",
    "run_check",
]

DURATION_ENV = "KVORUMCTL_CHECK_PERF_DURATION_S"
WORKERS_MAX = 128
KEY_BYTES = 256
VALUE_BYTES = 1024
_THROUGHPUT_RATIO_MIN = 0.9
_SLOWEST_S_MAX = 0.5
_STDDEV_S_MAX = 0.1
_CLEANUP_TIMEOUT_S = 30.0


@dataclass(frozen=True, slots=True)
class PerfLoad:
    """One workload: puts per second, concurrent clients, seconds."""

    rate_per_s: int
    clients: int
    duration_s: float


LOADS = {
    "s": PerfLoad(150, 50, 60),
    "m": PerfLoad(1000, 200, 60),
    "l": PerfLoad(8000, 500, 60),
    "xl": PerfLoad(15000, 1000, 60),
}
_ALIASES = {
    "s": "s", "small": "s", "m": "m", "medium": "m",
    "l": "l", "large": "l", "xl": "xl", "xLarge": "xl",
}  # fmt: skip


@dataclass(slots=True)
class PerfStats:
    """What the run measured (pkg/report's Stats, the parts the check reads)."""

    latencies_s: list[float] = field(default_factory=list)
    errors: dict[str, int] = field(default_factory=dict)
    total_s: float = 0.0

    @property
    def rps(self) -> float:
        return len(self.latencies_s) / self.total_s if self.total_s > 0 else 0.0

    @property
    def slowest_s(self) -> float:
        return max(self.latencies_s, default=0.0)

    @property
    def stddev_s(self) -> float:
        n = len(self.latencies_s)
        if n == 0:
            return 0.0
        mean = sum(self.latencies_s) / n
        return math.sqrt(sum((x - mean) ** 2 for x in self.latencies_s) / n)


def judge(stats: PerfStats, load: PerfLoad) -> tuple[list[str], bool]:
    """The verdict lines etcdctl prints for ``stats`` and whether the check passed."""
    lines: list[str] = []
    ok = True
    if stats.errors:
        lines.append("FAIL: too many errors")
        lines.extend(f"FAIL: ERROR({text}) -> {count}" for text, count in stats.errors.items())
        ok = False
    throughput = int(stats.rps) + 1
    if stats.rps / load.rate_per_s <= _THROUGHPUT_RATIO_MIN:
        lines.append(f"FAIL: Throughput too low: {throughput} writes/s")
        ok = False
    else:
        lines.append(f"PASS: Throughput is {throughput} writes/s")
    if stats.slowest_s > _SLOWEST_S_MAX:
        lines.append(f"Slowest request took too long: {stats.slowest_s:f}s")
        ok = False
    else:
        lines.append(f"PASS: Slowest request took {stats.slowest_s:f}s")
    if stats.stddev_s > _STDDEV_S_MAX:
        lines.append(f"Stddev too high: {stats.stddev_s:f}s")
        ok = False
    else:
        lines.append(f"PASS: Stddev is {stats.stddev_s:f}s")
    lines.append("PASS" if ok else "FAIL")
    return lines, ok


def _varint_key(prefix: bytes, rng: random.Random) -> bytes:
    """etcdctl's key: ``binary.PutVarint`` of a random int63 into a zeroed 256-byte buffer."""
    n = rng.randrange(0, (1 << 63) - 1)
    zigzag = n << 1  # n >= 0: zig-zag encoding doubles it
    head = bytearray()
    while zigzag >= 0x80:
        head.append((zigzag & 0x7F) | 0x80)
        zigzag >>= 7
    head.append(zigzag)
    return prefix + bytes(head) + bytes(KEY_BYTES - len(head))


def prefix_end(prefix: bytes) -> bytes:
    """clientv3's ``GetPrefixRangeEnd``."""
    end = bytearray(prefix)
    for i in range(len(end) - 1, -1, -1):
        if end[i] < 0xFF:
            end[i] += 1
            return bytes(end[: i + 1])
    return b"\x00"


def run_check(
    connect: Callable[[], Conn],
    load: PerfLoad,
    prefix: bytes,
    *,
    bar: progress.Progress | None = None,
    rng: random.Random | None = None,
    clock: Callable[[], float] = time.monotonic,
) -> PerfStats:
    """Put at ``load.rate_per_s`` for ``load.duration_s`` from ``load.clients`` clients (at
    most ``WORKERS_MAX`` threads, each on its own connection); returns what was measured.

    The issuing loop paces puts as a token bucket of one token (golang.org/x/time/rate with
    burst 1); the queue between it and the workers holds at most ``clients`` requests, so a
    slow server slows the issuing instead of piling up work.
    """
    gen = rng if rng is not None else random.Random()
    workers = max(1, min(load.clients, WORKERS_MAX))
    requests: queue.Queue[bytes | None] = queue.Queue(maxsize=load.clients)
    stats = PerfStats()
    lock = threading.Lock()
    value = bytes(VALUE_BYTES)
    conns = [connect() for _ in range(workers)]

    def work(conn: Conn) -> None:
        while True:
            key = requests.get()
            if key is None:
                return
            started = clock()
            try:
                conn.put(rpc_pb2.PutRequest(key=key, value=value))
                failure = ""
            except CallError as err:
                failure = err.message
            took = clock() - started
            with lock:
                stats.latencies_s.append(took)
                if failure:
                    stats.errors[failure] = stats.errors.get(failure, 0) + 1

    threads = [threading.Thread(target=work, args=(c,), daemon=True) for c in conns]
    for t in threads:
        t.start()
    started = clock()
    interval_s = 1.0 / load.rate_per_s
    due = started
    try:
        while True:
            now = clock()
            if now - started >= load.duration_s:
                break
            if now < due:
                time.sleep(min(due - now, load.duration_s - (now - started)))
                continue
            due = max(due + interval_s, now - interval_s)
            requests.put(_varint_key(prefix, gen))
            if bar is not None:
                bar.update(int(now - started))
    finally:
        for _ in threads:
            requests.put(None)
        for t in threads:
            t.join()
        stats.total_s = clock() - started
        if bar is not None:
            bar.finish()
    return stats


def _duration_s(ctx: Context) -> float | None:
    raw = ctx.environ.get(DURATION_ENV, "").strip()
    if not raw:
        return None
    try:
        value = float(raw)
    except ValueError:
        raise CtlExit(
            EXIT_ERROR, f"{DURATION_ENV} must be a number of seconds, not {raw!r}"
        ) from None
    if not 0 < value <= LOADS["s"].duration_s:
        raise CtlExit(EXIT_ERROR, f"{DURATION_ENV} must be in (0, 60], not {raw}")
    return value


def _out(stream: BinaryIO, line: str) -> None:
    stream.write(line.encode() + b"\n")
    stream.flush()


def _run_perf(ctx: Context) -> int:
    name = ctx.flags.get_str("load")
    model = _ALIASES.get(name)
    if model is None:
        raise CtlExit(EXIT_BAD_FEATURE, f"unknown load option {name}")
    load = LOADS[model]
    shortened = _duration_s(ctx)
    if shortened is not None:
        load = PerfLoad(load.rate_per_s, load.clients, shortened)
    prefix_text = ctx.flags.get_str("prefix")
    prefix = prefix_text.encode()
    first = ctx.conn()
    try:
        got = first.range(rpc_pb2.RangeRequest(key=prefix, range_end=prefix_end(prefix), limit=1))
    except CallError as err:
        raise call_failed(err) from None
    if got.kvs:
        raise CtlExit(
            EXIT_INVALID_INPUT,
            f"prefix {go_quote(prefix_text)} has keys. Delete with etcdctl del --prefix "
            f"{prefix_text} first",
        )
    bar = progress.for_stream(ctx.stderr, "check perf", int(load.duration_s), unit="s")
    stats = run_check(lambda: ctx.connect(None), load, prefix, bar=bar)
    try:
        deleted = first.delete_range(
            rpc_pb2.DeleteRangeRequest(key=prefix, range_end=prefix_end(prefix))
        )
    except CallError as err:
        raise call_failed(err) from None
    if ctx.flags.get_bool("auto-compact"):
        _compact(ctx, first, deleted.header.revision)
    if ctx.flags.get_bool("auto-defrag"):
        for ep in ctx.options.endpoints:
            _defrag(ctx, ep)
    lines, ok = judge(stats, load)
    for line in lines:
        _out(ctx.stdout, line)
    return 0 if ok else EXIT_ERROR


def _compact(ctx: Context, conn: Conn, revision: int) -> None:
    _out(ctx.stdout, f"Compacting with revision {revision}")
    try:
        conn.compact(rpc_pb2.CompactionRequest(revision=revision, physical=True))
    except CallError as err:
        raise call_failed(err) from None
    _out(ctx.stdout, f"Compacted with revision {revision}")


def _defrag(ctx: Context, ep: str) -> None:
    _out(ctx.stdout, f"Defragmenting {go_quote(ep)}")
    try:
        ctx.connect([ep], True).defragment()
    except CallError as err:
        raise call_failed(err) from None
    _out(ctx.stdout, f"Defragmented {go_quote(ep)}")


_AUTO_COMPACT = FlagSpec(
    "auto-compact", "bool", False, "Compact storage with last revision after test is finished."
)
_AUTO_DEFRAG = FlagSpec("auto-defrag", "bool", False, "Defragment storage after test is finished.")
PERF = Command(
    "perf",
    "Check the performance of the etcd cluster",
    use_args="[options]",
    flags=(
        _AUTO_COMPACT,
        _AUTO_DEFRAG,
        FlagSpec(
            "load",
            "string",
            "s",
            "The performance check's workload model. Accepted workloads: s(small), m(medium), "
            "l(large), xl(xLarge)",
        ),
        FlagSpec(
            "prefix",
            "string",
            "/etcdctl-check-perf/",
            "The prefix for writing the performance check's keys.",
        ),
    ),
    run=_run_perf,
)


# ``check datascale`` stays a placeholder (running it says kvorumctl does not implement it);
# its help is etcdctl's.
_DATASCALE = Command(
    "datascale",
    "Check the memory usage of holding data for different workloads on a given server endpoint.",
    use_args="[options]",
    long=(
        "If no endpoint is provided, localhost will be used. If multiple endpoints are "
        "provided, first endpoint will be used."
    ),
    flags=(
        _AUTO_COMPACT,
        _AUTO_DEFRAG,
        FlagSpec(
            "load",
            "string",
            "s",
            "The datascale check's workload model. Accepted workloads: s(small), m(medium), "
            "l(large), xl(xLarge)",
        ),
        FlagSpec(
            "prefix",
            "string",
            "/etcdctl-check-datascale/",
            "The prefix for writing the datascale check's keys.",
        ),
    ),
)
CHECK = Command(
    "check",
    "commands for checking properties of the etcd cluster",
    use_args="<subcommand>",
    children=(_DATASCALE, PERF),
)
