"""kvorumctl's entry point: find the command as cobra does, parse its flags as pflag does, run it,
and end as etcdctl ends (its texts on stdout/stderr, its exit codes)."""

from __future__ import annotations

import io
import os
import sys
from collections.abc import Mapping, Sequence
from typing import BinaryIO

from kvorum.check.cli import main_linearizability
from kvorum.ctl import _conn
from kvorum.ctl.commands import HELP, ROOT, Command, Context, is_placeholder
from kvorum.ctl.commands.spec import Connector
from kvorum.ctl.errors import EXIT_ERROR, CtlExit
from kvorum.ctl.flags import FlagError, FlagSpec, parse_flags
from kvorum.ctl.gofmt import go_quote
from kvorum.ctl.usage import render_usage

__all__ = ["find_command", "main", "run"]

# cobra suggests commands within this Levenshtein distance of an unknown one.
_SUGGESTION_DISTANCE_MAX = 2
_EXIT_SIGINT = 130


def _takes_value(word: str, specs: Sequence[FlagSpec]) -> bool:
    """Whether cobra's ``stripFlags`` assumes flag ``word`` consumes the next argument."""
    if word.startswith("--"):
        name = word[2:]
        return not any(s.name == name and s.kind == "bool" for s in specs) and name != "help"
    short = word[1:]
    return not any(s.shorthand == short and s.kind == "bool" for s in specs) and short != "h"


def _strip_flags(args: Sequence[str], specs: Sequence[FlagSpec]) -> list[str]:
    """cobra's ``stripFlags``: the words of ``args`` that are not flags or flag values."""
    words: list[str] = []
    rest = list(args)
    while rest:
        s = rest.pop(0)
        if s == "--":
            break
        long_with_value = s.startswith("--") and "=" not in s and _takes_value(s, specs)
        short_with_value = (
            s.startswith("-")
            and not s.startswith("--")
            and "=" not in s
            and len(s) == 2
            and _takes_value(s, specs)
        )
        if long_with_value or short_with_value:
            if len(rest) <= 1:
                break
            rest.pop(0)
            continue
        if s and not s.startswith("-"):
            words.append(s)
    return words


def find_command(argv: Sequence[str]) -> tuple[list[Command], list[str], list[str]]:
    """cobra's ``Find``: (command chain from the root, remaining args, their bare words)."""
    chain = [ROOT]
    args = list(argv)
    while True:
        words = _strip_flags(args, Command.flag_specs(chain))
        if not words:
            return chain, args, words
        nxt = chain[-1].child(words[0])
        if nxt is None:
            return chain, args, words
        args.remove(words[0])
        chain.append(nxt)


def _levenshtein(a: str, b: str) -> int:
    prev = list(range(len(b) + 1))
    for i, ca in enumerate(a, 1):
        cur = [i]
        for j, cb in enumerate(b, 1):
            cur.append(min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (ca != cb)))
        prev = cur
    return prev[-1]


def _unknown_command(word: str, chain: Sequence[Command]) -> str:
    path = " ".join(c.name for c in chain)
    text = f"unknown command {go_quote(word)} for {go_quote(path)}"
    typed = word.lower()
    suggestions = [
        c.name
        for c in chain[-1].children
        if (c is not HELP and _levenshtein(typed, c.name.lower()) <= _SUGGESTION_DISTANCE_MAX)
        or c.name.lower().startswith(typed)
    ]
    if suggestions:
        text += "\n\nDid you mean this?\n" + "".join(f"\t{s}\n" for s in suggestions)
    return text


def run(
    argv: Sequence[str],
    *,
    stdin: BinaryIO,
    stdout: BinaryIO,
    stderr: BinaryIO,
    environ: Mapping[str, str],
    connector: Connector,
) -> int:
    """Run one kvorumctl command line; returns the exit code."""
    if list(argv[:2]) == ["check", "linearizability"]:
        return _check_linearizability(argv[2:], stdout, stderr)
    help_topic = False
    chain, args, words = find_command(argv)
    if chain[-1] is HELP:
        # `etcdctl help <command>` prints that command's help.
        chain, args, words = find_command(args)
        help_topic = True
    if len(chain) == 1 and words:
        message = _unknown_command(words[0], chain)
        stderr.write(f"Error: {message}\nRun 'etcdctl --help' for usage.\n".encode())
        stderr.write(f"Error: {message}\n".encode())
        return EXIT_ERROR
    cmd = chain[-1]
    try:
        parsed = parse_flags(Command.flag_specs(chain), args)
    except FlagError as err:
        stderr.write(f"Error: {err}\n".encode())
        stdout.write(render_usage(chain).encode())
        stderr.write(f"\nError: {err}\n".encode())
        return EXIT_ERROR
    if parsed.help or help_topic or cmd is ROOT or (cmd.run is None and not is_placeholder(cmd)):
        stdout.write(render_usage(chain).encode())
        return 0
    if cmd.run is None:
        path = " ".join(c.name for c in chain[1:])
        stderr.write(f"Error: kvorumctl does not implement {go_quote(path)} yet\n".encode())
        return EXIT_ERROR
    ctx = Context(
        flags=parsed,
        args=parsed.args,
        stdin=stdin,
        stdout=stdout,
        stderr=stderr,
        environ=environ,
        connector=connector,
    )
    try:
        return cmd.run(ctx)
    except KeyboardInterrupt:
        # Go dies of SIGINT without a word; the shell sees 128 + 2.
        return _EXIT_SIGINT
    except CtlExit as done:
        stderr.write(done.prefix.encode())
        if done.message is not None:
            stderr.write(f"Error: {done.message}\n".encode())
        return done.code
    finally:
        ctx.close()
        stdout.flush()
        stderr.flush()


def _check_linearizability(argv: Sequence[str], stdout: BinaryIO, stderr: BinaryIO) -> int:
    """``kvorumctl check linearizability HISTORY``: kvorum's own subcommand (etcdctl has none),
    an offline check of a recorded history with ``kvorum.check``. It keeps its own flags and
    stays out of the etcdctl command tree, so ``check --help`` prints what etcdctl prints."""
    out, err = io.StringIO(), io.StringIO()
    code = main_linearizability(argv, prog="kvorumctl check linearizability", out=out, err=err)
    stdout.write(out.getvalue().encode())
    stderr.write(err.getvalue().encode())
    return code


def main(argv: Sequence[str] | None = None) -> int:
    """The ``kvorumctl`` console script."""
    # etcdctl itself unsets ETCDCTL_API before reading ETCDCTL_*; only v3 exists here.
    environ = {k: v for k, v in os.environ.items() if k != "ETCDCTL_API"}
    return run(
        sys.argv[1:] if argv is None else list(argv),
        stdin=sys.stdin.buffer,
        stdout=sys.stdout.buffer,
        stderr=sys.stderr.buffer,
        environ=environ,
        connector=_conn.connect,
    )
