"""Command-line face of the checker: ``python -m kvorum.check linearizability HISTORY``.

`main_linearizability` takes the arguments after the subcommand name, so that the future
``kvorumctl check linearizability HISTORY`` can call it unchanged. Exit codes: 0 linearizable,
1 not linearizable, 2 undecided (budget exhausted) or a usage / history error.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from typing import Any, TextIO

from kvorum.check.history import HistoryError, load_history, operation_to_dict
from kvorum.check.linearizability import (
    DEFAULT_MAX_MEMO_BYTES,
    DEFAULT_MAX_STEPS,
    DEFAULT_TIMEOUT_S,
    CheckResult,
    Verdict,
    check_operations,
)
from kvorum.check.report import format_result

EXIT_OK = 0
EXIT_ILLEGAL = 1
EXIT_UNKNOWN = 2
EXIT_USAGE = 2

_EXIT_BY_VERDICT = {
    Verdict.OK: EXIT_OK,
    Verdict.ILLEGAL: EXIT_ILLEGAL,
    Verdict.UNKNOWN: EXIT_UNKNOWN,
}


def _parser(prog: str) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=prog,
        description="Check a recorded client history (JSON lines, see kvorum.check.history) "
        "for linearizability against a register per key.",
    )
    parser.add_argument("history", help="path of the JSON-lines history file")
    parser.add_argument(
        "--timeout-s",
        type=float,
        default=DEFAULT_TIMEOUT_S,
        help=f"give up with 'unknown' after this many seconds (default {DEFAULT_TIMEOUT_S:g})",
    )
    parser.add_argument(
        "--max-steps",
        type=int,
        default=DEFAULT_MAX_STEPS,
        help="give up with 'unknown' after this many search steps",
    )
    parser.add_argument(
        "--max-memo-mb",
        type=int,
        default=DEFAULT_MAX_MEMO_BYTES >> 20,
        help="per-key cap on the search's memo (estimated), beyond which the key is 'unknown'",
    )
    parser.add_argument("--json", action="store_true", help="print the result as JSON")
    return parser


def result_to_dict(result: CheckResult) -> dict[str, Any]:
    """A JSON-ready summary of `result`; violations carry the full operation records."""
    return {
        "verdict": result.verdict.value,
        "reason": result.reason,
        "elapsed_s": result.elapsed_s,
        "keys": [
            {
                "key": k.key,
                "verdict": k.verdict.value,
                "op_count": k.op_count,
                "steps": k.steps,
                "reason": k.reason,
            }
            for k in result.keys
        ],
        "violations": [
            {
                "key": v.key,
                "prefix": [op.index for op in v.prefix],
                "state": v.state,
                "stuck": {"index": v.stuck.index, **operation_to_dict(v.stuck)},
                "concurrent": [{"index": op.index, **operation_to_dict(op)} for op in v.concurrent],
            }
            for v in result.violations
        ],
    }


def main_linearizability(
    argv: Sequence[str],
    *,
    prog: str = "python -m kvorum.check linearizability",
    out: TextIO | None = None,
    err: TextIO | None = None,
) -> int:
    """Run the check described by `argv` (arguments after the subcommand); return the exit code."""
    stdout = out if out is not None else sys.stdout
    stderr = err if err is not None else sys.stderr
    try:
        args = _parser(prog).parse_args(list(argv))
    except SystemExit as exc:  # argparse reports usage errors (and --help) by exiting
        return exc.code if isinstance(exc.code, int) else EXIT_USAGE
    if args.timeout_s <= 0 or args.max_steps <= 0 or args.max_memo_mb <= 0:
        print(f"{prog}: --timeout-s, --max-steps and --max-memo-mb must be positive", file=stderr)
        return EXIT_USAGE
    try:
        ops = load_history(args.history)
    except (OSError, HistoryError) as exc:
        print(f"{prog}: {args.history}: {exc}", file=stderr)
        return EXIT_USAGE
    result = check_operations(
        ops,
        timeout_s=args.timeout_s,
        max_steps=args.max_steps,
        max_memo_bytes=args.max_memo_mb << 20,
    )
    if args.json:
        print(json.dumps(result_to_dict(result), indent=2), file=stdout)
    else:
        print(format_result(result), file=stdout)
    return _EXIT_BY_VERDICT[result.verdict]
