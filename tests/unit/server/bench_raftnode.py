"""Throughput of three RaftNodes in one process (in-memory network, real WALs in a tmp dir).

Not a test: ``.venv/bin/python -m tests.unit.server.bench_raftnode [--proposals N]
[--writers C] [--uvloop]``. Every write goes through the leader's propose-and-wait;
the figure includes three members' fsyncs and applies sharing one event loop.
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time
from pathlib import Path

import uvloop

from tests.unit.server.helpers import cluster


async def bench(proposals: int, writers: int, payload_bytes: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        async with cluster(Path(tmp)) as c:
            lead = await c.leader()
            assert lead.transport is not None
            flushes_before = lead.transport.flushes
            latencies_s: list[float] = []
            filler = b"x" * payload_bytes

            async def writer(w: int) -> None:
                for i in range(proposals // writers):
                    started = time.perf_counter()
                    await lead.raft.propose(b"%d-%d" % (w, i) + filler, timeout_s=10.0)
                    latencies_s.append(time.perf_counter() - started)

            started = time.perf_counter()
            await asyncio.gather(*(writer(w) for w in range(writers)))
            took_s = time.perf_counter() - started
            latencies_s.sort()
            done = len(latencies_s)
            print(
                f"{done} proposals of {payload_bytes} B, {writers} writers: "
                f"{done / took_s:.0f}/s, p50 {latencies_s[done // 2] * 1000:.1f} ms, "
                f"p99 {latencies_s[int(done * 0.99)] * 1000:.1f} ms, "
                f"leader transport flushes {lead.transport.flushes - flushes_before}"
            )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--proposals", type=int, default=10_000)
    parser.add_argument("--writers", type=int, default=100)
    parser.add_argument("--payload-bytes", type=int, default=100)
    parser.add_argument("--uvloop", action="store_true")
    args = parser.parse_args()
    factory = uvloop.new_event_loop if args.uvloop else None
    with asyncio.Runner(loop_factory=factory) as runner:
        runner.run(bench(args.proposals, args.writers, args.payload_bytes))


if __name__ == "__main__":
    main()
