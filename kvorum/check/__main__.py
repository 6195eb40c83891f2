"""``python -m kvorum.check SUBCOMMAND ...``; the only subcommand is ``linearizability``."""

from __future__ import annotations

import sys
from collections.abc import Sequence

from kvorum.check.cli import EXIT_USAGE, main_linearizability

_USAGE = "usage: python -m kvorum.check linearizability HISTORY [--timeout-s N] [--json]"


def main(argv: Sequence[str]) -> int:
    if not argv:
        print(_USAGE, file=sys.stderr)
        return EXIT_USAGE
    if argv[0] in ("-h", "--help"):
        print(_USAGE)
        return 0
    if argv[0] != "linearizability":
        print(f"unknown subcommand {argv[0]!r}\n{_USAGE}", file=sys.stderr)
        return EXIT_USAGE
    return main_linearizability(argv[1:])


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
