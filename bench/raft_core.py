"""Raft core throughput: a 3-member in-memory cluster, proposals in batches.

Every member is a RawNode over a MemoryStorage; each Ready is carried out in
process (persist into the storage, deliver messages, apply, advance). The figure
is entries committed and applied on every member per second of wall time.

    .venv/bin/python bench/raft_core.py [--entries N] [--batch B] [--size BYTES] [--profile]
"""

from __future__ import annotations

import argparse
import cProfile
import pstats
import random
import sys
import time

from kvorum.raft import Config, ConfState, MemoryStorage, Message, RawNode, StateRole


class _Quiet:
    def debug(self, msg: str, *args: object) -> None:
        pass

    info = warning = error = debug


def build(n: int) -> tuple[dict[int, RawNode], dict[int, MemoryStorage]]:
    ids = tuple(range(1, n + 1))
    nodes: dict[int, RawNode] = {}
    stores: dict[int, MemoryStorage] = {}
    for i in ids:
        st = MemoryStorage(ConfState(ids))
        stores[i] = st
        nodes[i] = RawNode(Config(id=i), st, random.Random(i), _Quiet())
    return nodes, stores


def run(total: int, batch: int, size: int, members: int) -> tuple[float, int]:
    nodes, stores = build(members)
    applied = dict.fromkeys(nodes, 0)
    queue: list[Message] = []

    def pump() -> None:
        nonlocal queue
        while True:
            moved = False
            for nid, raw in nodes.items():
                if not raw.has_ready():
                    continue
                moved = True
                rd = raw.ready()
                st = stores[nid]
                if rd.entries:
                    st.append(rd.entries)
                if rd.hard_state is not None:
                    st.set_hard_state(rd.hard_state)
                queue.extend(rd.messages)
                applied[nid] += len(rd.committed_entries)
                raw.advance(rd)
            if not queue:
                if not moved:
                    return
                continue
            q, queue = queue, []
            for m in q:
                nodes[m.to].step(m)

    nodes[1].campaign()
    pump()
    assert nodes[1].status().role == StateRole.LEADER
    base = dict(applied)
    leader = nodes[1]
    payload = b"x" * size
    start = time.perf_counter()
    done = 0
    while done < total:
        for _ in range(batch):
            leader.propose(payload)
        done += batch
        pump()
    elapsed = time.perf_counter() - start
    committed = min(applied[i] - base[i] for i in nodes)
    return elapsed, committed


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--entries", type=int, default=200_000)
    ap.add_argument("--batch", type=int, default=500)
    ap.add_argument("--size", type=int, default=64, help="payload bytes per entry")
    ap.add_argument("--members", type=int, default=3)
    ap.add_argument("--profile", action="store_true")
    args = ap.parse_args(argv)
    if args.profile:
        prof = cProfile.Profile()
        prof.enable()
    elapsed, committed = run(args.entries, args.batch, args.size, args.members)
    if args.profile:
        prof.disable()
        pstats.Stats(prof).sort_stats("tottime").print_stats(25)
    print(f"command: {' '.join([sys.executable, *sys.argv])}")
    print(
        f"raft core: {args.members} members, batch {args.batch}, {args.size} B entries: "
        f"{committed} entries committed on every member in {elapsed:.2f} s = "
        f"{committed / elapsed:,.0f} entries/s"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
