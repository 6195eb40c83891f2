"""The load generator of ``bench/server.py``: one workload against one etcd-compatible endpoint.

    .venv/bin/python bench/server_client.py --endpoint 127.0.0.1:2379 --op put --clients 100

It runs in its own process, started by ``bench/server.py`` once per workload, so that its CPU
time is never charged to the server under test and so that kvorum and real etcd see exactly the
same client: the generated ``KVStub`` over ``grpc.aio``. ``--clients`` coroutines each keep one
request in flight (1 = sequential), spread over ``--conns`` HTTP/2 connections. The run ends at
whichever comes first, ``--max-ops`` requests or ``--max-seconds``; it prints one JSON object
with the count, the elapsed time, latency percentiles and the client's own CPU time, after a
``measuring`` and a ``stopped`` line that mark the measured window.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import resource
import sys
import time
from dataclasses import asdict, dataclass
from typing import Any

import grpc

from kvorum.api.pb.etcdserverpb import rpc_pb2, rpc_pb2_grpc

OPS = ("put", "get-linearizable", "get-serializable")
RPC_TIMEOUT_S = 10.0
# Requests before the clock starts: connection set-up and first-call costs are not the figure.
WARMUP_OPS_MAX = 200
# Latencies kept per run (one int each); the op budget is bounded by this too.
MAX_OPS_LIMIT = 1_000_000
MARK_START = "measuring"
MARK_STOP = "stopped"


@dataclass(frozen=True, slots=True)
class Result:
    """One workload's outcome, as ``bench/server.py`` reads it from stdout."""

    op: str
    clients: int
    conns: int
    ops: int
    errors: int
    elapsed_s: float
    ops_per_s: float
    p50_ms: float
    p99_ms: float
    mean_ms: float
    client_cpu_s: float
    first_error: str


def percentile_ms(sorted_ns: list[int], q: float) -> float:
    """The ``q``-quantile (0 < q <= 1) of sorted nanosecond latencies, nearest-rank, in ms."""
    if not sorted_ns:
        return float("nan")
    rank = max(1, min(len(sorted_ns), int(-(-q * len(sorted_ns) // 1))))
    return sorted_ns[rank - 1] / 1e6


def key_for(index: int) -> bytes:
    """Keys are ``bench/`` + a fixed-width number, so puts and gets share one keyspace."""
    return b"bench/%08d" % index


def _request(op: str, key: bytes, value: bytes) -> Any:
    if op == "put":
        return rpc_pb2.PutRequest(key=key, value=value)
    return rpc_pb2.RangeRequest(key=key, serializable=op == "get-serializable")


async def _run(args: argparse.Namespace) -> Result:
    rng = random.Random(args.seed)
    value = rng.randbytes(args.value_bytes)
    # Distinct subchannel pools make each channel its own TCP connection (grpc would share one).
    channels = [
        grpc.aio.insecure_channel(args.endpoint, options=[("grpc.use_local_subchannel_pool", 1)])
        for _ in range(args.conns)
    ]
    stubs = [rpc_pb2_grpc.KVStub(ch) for ch in channels]  # type: ignore[no-untyped-call]
    latencies_ns: list[int] = []
    errors = 0
    first_error = ""
    budget = min(args.max_ops, MAX_OPS_LIMIT)
    issued = 0
    measuring = False
    deadline = float("inf")

    async def worker(stub: Any) -> None:
        nonlocal errors, first_error, issued
        call = stub.Put if args.op == "put" else stub.Range
        while issued < budget and time.perf_counter() < deadline:
            issued += 1
            counted = measuring
            request = _request(args.op, key_for(rng.randrange(args.key_space)), value)
            started = time.perf_counter_ns()
            try:
                await call(request, timeout=RPC_TIMEOUT_S)
            except grpc.RpcError as exc:
                errors += 1
                first_error = first_error or f"{exc.code()}: {exc.details()}"
                continue
            if counted:
                latencies_ns.append(time.perf_counter_ns() - started)

    try:
        for ch in channels:
            await asyncio.wait_for(ch.channel_ready(), RPC_TIMEOUT_S)
        # Warm-up: a short concurrent burst whose results are discarded.
        budget, deadline = min(WARMUP_OPS_MAX, args.clients * 2), time.perf_counter() + 2.0
        await asyncio.gather(*(worker(stubs[i % len(stubs)]) for i in range(args.clients)))
        errors, first_error, issued = 0, "", 0
        budget = min(args.max_ops, MAX_OPS_LIMIT)
        measuring = True
        # Markers on stdout let the parent read the servers' CPU time over exactly this window.
        print(MARK_START, flush=True)
        cpu_before = resource.getrusage(resource.RUSAGE_SELF)
        started = time.perf_counter()
        deadline = started + args.max_seconds
        await asyncio.gather(*(worker(stubs[i % len(stubs)]) for i in range(args.clients)))
        elapsed_s = time.perf_counter() - started
        print(MARK_STOP, flush=True)
        cpu_after = resource.getrusage(resource.RUSAGE_SELF)
    finally:
        for ch in channels:
            await ch.close()
    latencies_ns.sort()
    ok = len(latencies_ns)
    cpu_s = (cpu_after.ru_utime - cpu_before.ru_utime) + (cpu_after.ru_stime - cpu_before.ru_stime)
    return Result(
        op=args.op,
        clients=args.clients,
        conns=args.conns,
        ops=ok,
        errors=errors,
        elapsed_s=round(elapsed_s, 3),
        ops_per_s=round(ok / elapsed_s, 1) if elapsed_s > 0 else 0.0,
        p50_ms=round(percentile_ms(latencies_ns, 0.50), 3),
        p99_ms=round(percentile_ms(latencies_ns, 0.99), 3),
        mean_ms=round(sum(latencies_ns) / ok / 1e6, 3) if ok else float("nan"),
        client_cpu_s=round(cpu_s, 3),
        first_error=first_error,
    )


def parse_args(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--endpoint", required=True, help="host:port of the member to load")
    p.add_argument("--op", choices=OPS, required=True)
    p.add_argument("--clients", type=int, default=1, help="requests in flight")
    p.add_argument("--conns", type=int, default=1, help="TCP connections the clients share")
    p.add_argument("--max-ops", type=int, default=10_000)
    p.add_argument("--max-seconds", type=float, default=10.0)
    p.add_argument("--value-bytes", type=int, default=256)
    p.add_argument("--key-space", type=int, default=10_000)
    p.add_argument("--seed", type=int, default=1)
    args = p.parse_args(argv)
    if args.clients < 1 or args.conns < 1 or args.max_ops < 1 or args.max_seconds <= 0:
        p.error("--clients, --conns, --max-ops and --max-seconds must be positive")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    result = asyncio.run(_run(args))
    print(json.dumps(asdict(result)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
