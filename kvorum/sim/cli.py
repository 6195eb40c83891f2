"""Command line: run one seed (replayable, with its trace hash) or a range of seeds.

    python -m kvorum.sim --seed N [--nodes 3|5] [--steps M] [-v]
    python -m kvorum.sim --seeds A-B [--nodes 3|5] [--steps M] [--jobs 1|2]

One seed prints progress only with ``-v``; its last line is always ``trace-hash: <hex>``. A range
prints every failing seed with the command that replays it and ends with a summary line; the exit
code is 1 if any seed failed.
"""

from __future__ import annotations

import argparse
import multiprocessing
import sys
from collections.abc import Sequence

from kvorum.sim.cluster import DEFAULT_STEPS, Cluster, SimConfig

MAX_JOBS = 2
"""The machine is shared: never more than two worker processes."""


def parse_seed_range(text: str) -> range:
    """``"A-B"`` (inclusive) or ``"N"`` to a range of seeds."""
    lo_text, sep, hi_text = text.partition("-")
    try:
        lo = int(lo_text)
        hi = int(hi_text) if sep else lo
    except ValueError:
        raise argparse.ArgumentTypeError(f"seed range must look like A-B, got {text!r}") from None
    if lo < 0 or hi < lo:
        raise argparse.ArgumentTypeError(f"empty or negative seed range {text!r}")
    return range(lo, hi + 1)


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m kvorum.sim", description="Deterministic raft cluster simulation."
    )
    which = p.add_mutually_exclusive_group(required=True)
    which.add_argument("--seed", type=int, help="run one seed")
    which.add_argument("--seeds", type=parse_seed_range, help="run seeds A-B (inclusive)")
    p.add_argument("--nodes", type=int, default=3, help="initial voters (default 3)")
    p.add_argument("--steps", type=int, default=DEFAULT_STEPS, help="ticks in the fault phase")
    p.add_argument("--jobs", type=int, default=MAX_JOBS, help="worker processes (at most 2)")
    p.add_argument("-v", "--verbose", action="store_true", help="print progress lines")
    return p


def _run_one(args: tuple[int, int, int]) -> tuple[int, str | None, str]:
    seed, nodes, steps = args
    result = Cluster(SimConfig(seed=seed, nodes=nodes, steps=steps)).run()
    return seed, result.violation, result.trace_hash


def _replay(seed: int, nodes: int, steps: int) -> str:
    return f"python -m kvorum.sim --seed {seed} --nodes {nodes} --steps {steps}"


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.nodes < 1 or args.steps < 0:
        print("--nodes must be >= 1 and --steps >= 0", file=sys.stderr)
        return 2
    if args.seed is not None:
        log = print if args.verbose else None
        result = Cluster(SimConfig(args.seed, args.nodes, args.steps), log=log).run()
        if args.verbose:
            for key in sorted(result.stats):
                print(f"  {key}: {result.stats[key]}")
            for key in sorted(result.checks):
                print(f"  check {key}: {result.checks[key]}")
        if result.violation is not None:
            if result.error_trace is not None:
                print(result.error_trace, end="")
            print(f"FAIL seed {args.seed}: {result.violation}")
            print(f"replay: {result.replay_command()}")
        print(f"trace-hash: {result.trace_hash}")
        return 0 if result.ok else 1

    seeds: range = args.seeds
    jobs = max(1, min(MAX_JOBS, args.jobs))
    work = [(s, args.nodes, args.steps) for s in seeds]
    failed: list[int] = []

    def report(seed: int, violation: str | None) -> None:
        if violation is None:
            return
        failed.append(seed)
        print(f"FAIL seed {seed}: {violation}")
        print(f"  replay: {_replay(seed, args.nodes, args.steps)}", flush=True)

    if jobs == 1 or len(work) == 1:
        for item in work:
            seed, violation, _ = _run_one(item)
            report(seed, violation)
    else:
        with multiprocessing.get_context("spawn").Pool(jobs) as pool:
            for seed, violation, _ in pool.imap(_run_one, work, chunksize=16):
                report(seed, violation)
    print(f"seeds: {len(work) - len(failed)} passed, {len(failed)} failed")
    return 1 if failed else 0
