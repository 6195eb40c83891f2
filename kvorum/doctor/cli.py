"""``kvorum doctor``: can this machine hold a cluster member? Measure, judge, advise.

    kvorum doctor [--data-dir DIR] [--peer-urls URL,...] [--initial-cluster N=URL,... --name N]
                  [--seconds 3] [--heartbeat-interval 100] [--election-timeout 1000]
                  [-w table|json]

Prints the findings, the verdict (``ok``, ``warn`` or ``fail``) and the advised
``--heartbeat-interval`` / ``--election-timeout`` with their reasons. Exit status: 0 once the
measurements ran (whatever the verdict: read it from the output, or from ``-w json``),
2 for a bad command line, 1 if measuring failed (an unwritable data dir).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from collections.abc import Sequence
from dataclasses import asdict
from typing import Any, TextIO

from kvorum.doctor.measure import MeasureOptions, measure, peer_urls_of, split_urls
from kvorum.doctor.verdict import (
    DEFAULT_ELECTION_MS,
    DEFAULT_HEARTBEAT_MS,
    Report,
    judge,
)

__all__ = ["main", "render_json", "render_table"]

EXIT_OK = 0
EXIT_MEASURE_FAILED = 1
EXIT_USAGE = 2
MAX_SECONDS = 600.0


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="kvorum doctor",
        description="Measure what decides whether a cluster member will be stable on this "
        "machine (disk fsync, peer round trips, scheduling stalls, CPU steal, cluster shape) "
        "and advise --heartbeat-interval and --election-timeout.",
    )
    p.add_argument("--data-dir", default=".", help="where the member's data dir will live")
    p.add_argument("--peer-urls", default="", help="the other members' peer URLs, comma-separated")
    p.add_argument("--initial-cluster", default="", help="name=peer-url,... as given to members")
    p.add_argument("--name", default="", help="this member's name in --initial-cluster")
    p.add_argument("--seconds", type=float, default=3.0, help="how long to measure (default 3)")
    p.add_argument("--heartbeat-interval", type=int, default=DEFAULT_HEARTBEAT_MS, help="ms")
    p.add_argument("--election-timeout", type=int, default=DEFAULT_ELECTION_MS, help="ms")
    p.add_argument("-w", "--write-out", choices=("table", "json"), default="table")
    return p


def _table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    """An etcdctl-style boxed table."""
    widths = [max(len(header[i]), *(len(r[i]) for r in rows)) for i in range(len(header))]
    rule = "+" + "+".join("-" * (w + 2) for w in widths) + "+"

    def line(cells: Sequence[str]) -> str:
        return "|" + "|".join(f" {c.ljust(w)} " for c, w in zip(cells, widths, strict=True)) + "|"

    return [rule, line(header), rule, *(line(r) for r in rows), rule]


def render_table(report: Report) -> str:
    m = report.measurements
    lines = [f"kvorum doctor: measured for {m.seconds:g} s, data dir {m.fsync_dir}"]
    lines += _table(
        ("CHECK", "MEASURED", "LEVEL", "REASON"),
        [(f.check, f.measured, f.level.text, f.reason) for f in report.findings],
    )
    lines.append(f"verdict: {report.verdict.text}")
    a = report.advice
    lines += _table(
        ("FLAG", "ADVISED", "CURRENT", "WHY"),
        [
            (
                "--heartbeat-interval",
                str(a.heartbeat_ms),
                str(m.heartbeat_ms),
                "; ".join(a.heartbeat_reasons),
            ),
            (
                "--election-timeout",
                str(a.election_ms),
                str(m.election_ms),
                "; ".join(a.election_reasons),
            ),
        ],
    )
    return "\n".join(lines) + "\n"


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    return value


def render_json(report: Report) -> str:
    body = {
        "verdict": report.verdict.text,
        "findings": [
            {"check": f.check, "measured": f.measured, "level": f.level.text, "reason": f.reason}
            for f in report.findings
        ],
        "advice": _jsonable(asdict(report.advice)),
        "measurements": _jsonable(asdict(report.measurements)),
    }
    return json.dumps(body, indent=2) + "\n"


def main(argv: Sequence[str], out: TextIO | None = None) -> int:
    """Run ``kvorum doctor`` with ``argv`` (the words after ``doctor``)."""
    stream = out if out is not None else sys.stdout
    try:
        args = _parser().parse_args(list(argv))
    except SystemExit as exc:  # argparse has printed its message
        return EXIT_OK if exc.code == 0 else EXIT_USAGE
    if not 0 < args.seconds <= MAX_SECONDS:
        print(f"kvorum doctor: --seconds must be in (0, {MAX_SECONDS:g}]", file=sys.stderr)
        return EXIT_USAGE
    if args.heartbeat_interval <= 0 or args.election_timeout < 5 * args.heartbeat_interval:
        print(
            "kvorum doctor: --election-timeout must be at least 5 times --heartbeat-interval",
            file=sys.stderr,
        )
        return EXIT_USAGE
    peers = tuple(split_urls(args.peer_urls))
    members = len(peers) + 1
    if args.initial_cluster:
        try:
            from_cluster, members = peer_urls_of(args.initial_cluster, args.name)
        except ValueError as exc:
            print(f"kvorum doctor: {exc}", file=sys.stderr)
            return EXIT_USAGE
        peers = peers or from_cluster
    options = MeasureOptions(
        seconds=args.seconds,
        data_dir=args.data_dir,
        peer_urls=peers,
        member_count=members,
        heartbeat_ms=args.heartbeat_interval,
        election_ms=args.election_timeout,
    )
    try:
        measurements = asyncio.run(measure(options))
    except OSError as exc:
        print(f"kvorum doctor: cannot measure: {exc}", file=sys.stderr)
        return EXIT_MEASURE_FAILED
    report = judge(measurements)
    stream.write(render_json(report) if args.write_out == "json" else render_table(report))
    return EXIT_OK
