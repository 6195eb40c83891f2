"""Watch and Lease throughput, kvorum against real etcd: the same client, one run, one machine.

    .venv/bin/python bench/watch_lease.py [--rounds 1] [--max-seconds 5] [--stall-seconds 5]
                                          [--json FILE]

A fresh 1-member ``/usr/bin/etcd`` and then a fresh 1-member ``.venv/bin/kvorum`` are started with
``kvorum.testing.Cluster`` (data in a temporary directory under /tmp). Against each, this same
file is run again as the client (``--client ENDPOINT``) in a separate process, so its CPU is
never charged to the server; it drives every workload through the generated stubs over
``grpc.aio`` and prints one JSON line per workload. Workloads, each bounded in count and time:

* ``watch, 1 watcher``: one watcher on a prefix while puts of 256-byte values run with 64 in
  flight; events/s is events delivered over the time from the first put to the last event.
* ``watch, 1,000 watchers``: 1,000 watchers of the same prefix on 10 streams (100 each, as a
  client multiplexing many watches would), a smaller put count: every put is 1,000 events.
* ``slow watcher``: puts (4 KiB values, 64 in flight) for ``--stall-seconds`` with no watcher,
  then as long again with one watcher that reads nothing, then the watcher drains; reports put/s
  of both phases, the drain time, and whether every event arrived once and in order.
* ``keep-alive, 1 stream`` / ``10 streams``: 1,000 leases granted, then keep-alives sent
  round-robin over the leases with 100 unanswered at most (per run, split over the streams).

The servers' CPU over each workload is read from /proc between the client's begin and end
markers. With ``--rounds N`` both servers run N times, the order alternating; figures are
medians over the rounds. Prints a markdown table with the ratio kvorum/etcd and the command
line. Every process is started and stopped by pid.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import shlex
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Coroutine
from pathlib import Path
from typing import Any

import grpc

from kvorum.api.pb.etcdserverpb import rpc_pb2, rpc_pb2_grpc
from kvorum.testing.cluster import Cluster, binary_for

SERVERS = ("etcd", "kvorum")
RPC_TIMEOUT_S = 10.0
MARK_BEGIN, MARK_END = "begin ", "end "
CLK_TCK = os.sysconf("SC_CLK_TCK")
#: Extra time the client process gets beyond its workloads' bounds before it is killed.
CLIENT_GRACE_S = 60.0
WORKLOADS = 5
PUTS_IN_FLIGHT = 64
WATCH1_PUTS = 20_000
FANOUT_WATCHERS, FANOUT_STREAMS, FANOUT_PUTS = 1_000, 10, 200
#: How long events may take to arrive after the last put before the run is cut short.
DELIVERY_MAX_S = 30.0
SLOW_VALUE_BYTES = 4 << 10
SLOW_PUTS_MAX = 50_000
LEASES, KEEPALIVES_IN_FLIGHT, KEEPALIVES_MAX = 1_000, 100, 200_000
LEASE_TTL_S = 600
GRANTS_IN_FLIGHT = 50


# -- the client process -----------------------------------------------------------------------


def _channel(endpoint: str) -> grpc.aio.Channel:
    # A local subchannel pool makes each channel its own TCP connection. Responses of any size
    # are taken, as etcd's Go client takes them: a watcher catching up from history gets many
    # revisions in one response (etcd 3.4 sends tens of MB), past grpc's 4 MiB default.
    options = [("grpc.use_local_subchannel_pool", 1), ("grpc.max_receive_message_length", -1)]
    return grpc.aio.insecure_channel(endpoint, options=options)


def _begin(name: str) -> None:
    print(MARK_BEGIN + name, flush=True)


def _end(name: str, figures: dict[str, Any]) -> None:
    print(MARK_END + name, flush=True)
    print(json.dumps({"workload": name, **figures}), flush=True)


async def _bounded(work: Coroutine[Any, Any, None], timeout_s: float) -> None:
    """Run `work` for at most `timeout_s`, then cancel it (no error: the counts tell)."""
    task = asyncio.create_task(work)
    await asyncio.wait([task], timeout=max(timeout_s, 0.0))
    if not task.done():
        task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task


async def _put_load(
    kv: Any, prefix: bytes, value: bytes, max_puts: int, until: float, acked: list[int]
) -> None:
    """Puts with PUTS_IN_FLIGHT outstanding, until `max_puts` are issued or `until` passes;
    the revision of each acknowledged put goes to `acked`."""
    issued = 0

    async def worker(n: int) -> None:
        nonlocal issued
        while issued < max_puts and time.perf_counter() < until:
            issued += 1
            key = prefix + b"%04d" % (issued % 100)
            resp = await kv.Put(rpc_pb2.PutRequest(key=key, value=value), timeout=RPC_TIMEOUT_S)
            acked.append(resp.header.revision)

    await asyncio.gather(*(worker(n) for n in range(PUTS_IN_FLIGHT)))


async def _open_watchers(
    channel: grpc.aio.Channel, prefix: bytes, count: int, **fields: Any
) -> Any:
    """One Watch stream with `count` watchers of `prefix`, every one created."""
    call = rpc_pb2_grpc.WatchStub(channel).Watch()  # type: ignore[no-untyped-call]
    end = prefix[:-1] + bytes([prefix[-1] + 1])
    for _ in range(count):
        create = rpc_pb2.WatchCreateRequest(key=prefix, range_end=end, **fields)
        await call.write(rpc_pb2.WatchRequest(create_request=create))
    created = 0
    while created < count:
        response = await asyncio.wait_for(call.read(), RPC_TIMEOUT_S)
        created += int(response.created)
    return call


async def watch_throughput(
    endpoint: str, name: str, watchers: int, streams: int, puts: int, max_s: float
) -> None:
    """Events/s delivered to `watchers` watchers (on `streams` streams) under a put load."""
    prefix = f"w{watchers}/".encode()
    channels = [_channel(endpoint) for _ in range(streams + 1)]
    kv: Any = rpc_pb2_grpc.KVStub(channels[0])  # type: ignore[no-untyped-call]
    try:
        calls = [await _open_watchers(ch, prefix, watchers // streams) for ch in channels[1:]]
        received = 0
        last_event_at = 0.0
        acked: list[int] = []

        async def reader(call: Any) -> None:
            nonlocal received, last_event_at
            while True:
                response = await call.read()
                if response is grpc.aio.EOF:
                    return
                if response.events:
                    received += len(response.events)
                    last_event_at = time.perf_counter()

        readers = [asyncio.create_task(reader(call)) for call in calls]
        _begin(name)
        started = time.perf_counter()
        until = started + max_s
        await _put_load(kv, prefix, b"v" * 256, puts, until, acked)
        put_s = time.perf_counter() - started
        expected = len(acked) * watchers
        while received < expected and time.perf_counter() < until + DELIVERY_MAX_S:
            await asyncio.sleep(0.01)  # the readers count; `last_event_at` is the figure
        elapsed_s = max(last_event_at - started, 1e-9)
        _end(
            name,
            {
                "puts": len(acked),
                "puts_per_s": len(acked) / put_s,
                "events": received,
                "expected_events": expected,
                "events_per_s": received / elapsed_s,
            },
        )
        for task in readers:
            task.cancel()
        for call in calls:
            call.cancel()
    finally:
        for ch in channels:
            await ch.close()


async def slow_watcher(endpoint: str, stall_s: float, max_s: float) -> None:
    """Put rate with no watcher, then with one that reads nothing; then its drain."""
    name = "slow watcher"
    value = b"s" * SLOW_VALUE_BYTES
    kv_channel, watch_channel = _channel(endpoint), _channel(endpoint)
    kv: Any = rpc_pb2_grpc.KVStub(kv_channel)  # type: ignore[no-untyped-call]
    try:
        _begin(name)
        baseline: list[int] = []
        started = time.perf_counter()
        await _put_load(kv, b"sa/", value, SLOW_PUTS_MAX, started + stall_s, baseline)
        baseline_s = time.perf_counter() - started

        call = await _open_watchers(watch_channel, b"sb/", 1)
        stalled: list[int] = []
        started = time.perf_counter()
        await _put_load(kv, b"sb/", value, SLOW_PUTS_MAX, started + stall_s, stalled)
        stalled_s = time.perf_counter() - started
        await asyncio.sleep(max(started + stall_s - time.perf_counter(), 0))

        seen: list[int] = []

        async def drain() -> None:
            # No timeout on one read: cancelling a read cancels the whole grpc.aio call.
            while len(seen) < len(stalled):
                response = await call.read()
                if response is grpc.aio.EOF:
                    return
                seen.extend(e.kv.mod_revision for e in response.events)

        drain_started = time.perf_counter()
        await _bounded(drain(), max_s)
        drain_s = time.perf_counter() - drain_started
        call.cancel()
        _end(
            name,
            {
                "puts_per_s_no_watcher": len(baseline) / baseline_s,
                "puts_per_s_stalled_watcher": len(stalled) / stalled_s,
                "stalled_puts": len(stalled),
                "stalled_mib": len(stalled) * SLOW_VALUE_BYTES / (1 << 20),
                "drain_s": drain_s,
                "drain_events_per_s": len(seen) / max(drain_s, 1e-9),
                "complete_in_order": seen == sorted(stalled),
            },
        )
    finally:
        await kv_channel.close()
        await watch_channel.close()


async def _grant_leases(lease: Any, count: int) -> list[int]:
    ids: list[int] = []

    async def worker() -> None:
        while len(ids) < count:
            resp = await lease.LeaseGrant(
                rpc_pb2.LeaseGrantRequest(TTL=LEASE_TTL_S), timeout=RPC_TIMEOUT_S
            )
            ids.append(resp.ID)

    await asyncio.gather(*(worker() for _ in range(GRANTS_IN_FLIGHT)))
    return ids


async def keep_alives(endpoint: str, leases: list[int], streams: int, max_s: float) -> None:
    """Keep-alives/s over `streams` streams, KEEPALIVES_IN_FLIGHT unanswered in all."""
    name = f"keep-alive, {streams} stream{'s' if streams > 1 else ''}"
    channels = [_channel(endpoint) for _ in range(streams)]
    answered = 0
    expired = 0
    sent = 0
    per_stream = KEEPALIVES_IN_FLIGHT // streams

    async def one_stream(channel: grpc.aio.Channel, until: float) -> None:
        nonlocal answered, expired, sent
        call = rpc_pb2_grpc.LeaseStub(channel).LeaseKeepAlive()  # type: ignore[no-untyped-call]
        window = asyncio.Semaphore(per_stream)
        in_flight = 0
        all_sent = asyncio.Event()

        async def send() -> None:
            nonlocal sent, in_flight
            while sent < KEEPALIVES_MAX and time.perf_counter() < until:
                await window.acquire()
                in_flight += 1
                await call.write(rpc_pb2.LeaseKeepAliveRequest(ID=leases[sent % len(leases)]))
                sent += 1
            all_sent.set()

        async def receive() -> None:
            nonlocal answered, expired, in_flight
            while not (all_sent.is_set() and in_flight == 0):
                response = await call.read()
                if response is grpc.aio.EOF:
                    return
                answered += 1
                expired += int(response.TTL <= 0)
                in_flight -= 1
                window.release()

        sender = asyncio.create_task(send())
        # Answers lost would leave `receive` waiting: bounded, the count shows them.
        await _bounded(receive(), until - time.perf_counter() + RPC_TIMEOUT_S)
        sender.cancel()
        call.cancel()

    try:
        _begin(name)
        started = time.perf_counter()
        until = started + max_s
        await asyncio.gather(*(one_stream(ch, until) for ch in channels))
        elapsed_s = time.perf_counter() - started
        _end(
            name,
            {"keepalives": answered, "keepalives_per_s": answered / elapsed_s, "expired": expired},
        )
    finally:
        for ch in channels:
            await ch.close()


async def run_client(endpoint: str, max_s: float, stall_s: float) -> None:
    await watch_throughput(endpoint, "watch, 1 watcher", 1, 1, WATCH1_PUTS, max_s)
    await watch_throughput(
        endpoint,
        f"watch, {FANOUT_WATCHERS:,} watchers",
        FANOUT_WATCHERS,
        FANOUT_STREAMS,
        FANOUT_PUTS,
        max_s,
    )
    await slow_watcher(endpoint, stall_s, max_s * 4)
    channel = _channel(endpoint)
    try:
        lease: Any = rpc_pb2_grpc.LeaseStub(channel)  # type: ignore[no-untyped-call]
        leases = await _grant_leases(lease, LEASES)
    finally:
        await channel.close()
    await keep_alives(endpoint, leases, 1, max_s)
    await keep_alives(endpoint, leases, 10, max_s)


# -- the driver -------------------------------------------------------------------------------


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of process `pid`, from /proc."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def measure(server: str, args: argparse.Namespace) -> list[dict[str, Any]]:
    """Start a 1-member cluster of `server`, run the client against it, stop the cluster."""
    with tempfile.TemporaryDirectory(prefix=f"kvorum-bench-watch-{server}-") as tmp:
        cluster = Cluster(binary_for(server), 1, base_dir=Path(tmp))
        with cluster:
            pid = cluster.member(0).pid
            command = [
                sys.executable,
                __file__,
                "--client",
                cluster.member(0).spec.client_address,
                "--max-seconds",
                str(args.max_seconds),
                "--stall-seconds",
                str(args.stall_seconds),
            ]
            with tempfile.TemporaryFile(mode="w+") as err_file:
                proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=err_file, text=True)
                budget_s = (
                    args.max_seconds * 10
                    + args.stall_seconds * 2
                    + 2 * DELIVERY_MAX_S
                    + CLIENT_GRACE_S
                )
                killer = threading.Timer(budget_s, proc.kill)
                killer.start()
                try:
                    results = _read_client(proc, pid)
                finally:
                    killer.cancel()
                    if proc.poll() is None:
                        proc.kill()
                    proc.wait()
                err_file.seek(0)
                if proc.returncode != 0 or len(results) != WORKLOADS:
                    raise RuntimeError(
                        f"{server} client failed ({proc.returncode}): {err_file.read()[-3000:]}"
                    )
    for result in results:
        result["server"] = server
    return results


def _read_client(proc: subprocess.Popen[str], pid: int) -> list[dict[str, Any]]:
    """The client's JSON lines, each with the server's CPU share between its markers."""
    assert proc.stdout is not None
    results: list[dict[str, Any]] = []
    cpu_before, started = 0.0, 0.0
    share = float("nan")
    for line in proc.stdout:
        if line.startswith(MARK_BEGIN):
            cpu_before, started = cpu_seconds(pid), time.monotonic()
        elif line.startswith(MARK_END):
            share = (cpu_seconds(pid) - cpu_before) / max(time.monotonic() - started, 1e-9)
        elif line.startswith("{"):
            results.append({**json.loads(line), "server_cpu_share": share})
    return results


#: (workload, figure, label) rows of the table.
ROWS = (
    ("watch, 1 watcher", "events_per_s", "events/s delivered"),
    ("watch, 1 watcher", "puts_per_s", "puts/s meanwhile"),
    ("watch, 1,000 watchers", "events_per_s", "events/s delivered"),
    ("watch, 1,000 watchers", "puts_per_s", "puts/s meanwhile"),
    ("slow watcher", "puts_per_s_no_watcher", "puts/s, no watcher"),
    ("slow watcher", "puts_per_s_stalled_watcher", "puts/s, 1 watcher reading nothing"),
    ("slow watcher", "stalled_mib", "MiB written while it read nothing"),
    ("slow watcher", "drain_s", "s to drain it"),
    ("keep-alive, 1 stream", "keepalives_per_s", "keep-alives/s"),
    ("keep-alive, 10 streams", "keepalives_per_s", "keep-alives/s"),
)


def _median(results: list[dict[str, Any]], server: str, workload: str, figure: str) -> float:
    return statistics.median(
        float(r[figure]) for r in results if (r["server"], r["workload"]) == (server, workload)
    )


def table(results: list[dict[str, Any]], rounds: int) -> list[str]:
    """Medians over the rounds; with several rounds, the per-round ratios' range in brackets."""
    lines = [
        "| workload | figure | etcd | kvorum | kvorum/etcd | server CPU etcd / kvorum |",
        "|---|---|---:|---:|---:|---:|",
    ]
    for workload, figure, label in ROWS:
        a = _median(results, "etcd", workload, figure)
        b = _median(results, "kvorum", workload, figure)
        ratio = f"{b / a:.2f}" if a else "n/a"
        if rounds > 1:
            per_round = []
            for n in range(rounds):
                mine = [r for r in results if r["round"] == n and r["workload"] == workload]
                by = {r["server"]: float(r[figure]) for r in mine}
                if by.get("etcd"):
                    per_round.append(by["kvorum"] / by["etcd"])
            if per_round:
                ratio += f" ({min(per_round):.2f} to {max(per_round):.2f})"
        cpu_a = _median(results, "etcd", workload, "server_cpu_share")
        cpu_b = _median(results, "kvorum", workload, "server_cpu_share")
        lines.append(
            f"| {workload} | {label} | {a:,.1f} | {b:,.1f} | {ratio} | {cpu_a:.0%} / {cpu_b:.0%} |"
        )
    checks = []
    for r in results:
        if "expected_events" in r and r["events"] != r["expected_events"]:
            checks.append(f"{r['server']} {r['workload']}: {r['events']}/{r['expected_events']}")
        if r["workload"] == "slow watcher" and not r["complete_in_order"]:
            checks.append(f"{r['server']} slow watcher: events lost or out of order")
        if r.get("expired"):
            checks.append(f"{r['server']} {r['workload']}: {r['expired']} leases not found")
    lines.append("")
    lines.append("every event delivered: " + ("yes" if not checks else "NO: " + "; ".join(checks)))
    return lines


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--max-seconds", type=float, default=5.0, help="bound of each workload")
    parser.add_argument("--stall-seconds", type=float, default=5.0, help="slow watcher's stall")
    parser.add_argument("--rounds", type=int, default=1, help="runs of both, order alternating")
    parser.add_argument("--json", type=Path, help="also write the raw figures here")
    parser.add_argument("--client", metavar="ENDPOINT", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.client:
        asyncio.run(run_client(args.client, args.max_seconds, args.stall_seconds))
        return 0
    started = time.monotonic()
    results: list[dict[str, Any]] = []
    load_before = os.getloadavg()[0]
    for n in range(args.rounds):
        for server in SERVERS if n % 2 == 0 else SERVERS[::-1]:
            results += [{**r, "round": n} for r in measure(server, args)]
    print("\n".join(table(results, args.rounds)))
    load_after = os.getloadavg()[0]
    print(
        f"\n{args.rounds} round(s), {time.monotonic() - started:.0f} s; "
        f"load average {load_before:.1f} before, {load_after:.1f} after"
    )
    print("command: " + shlex.join([Path(sys.executable).name, *sys.argv]))
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
