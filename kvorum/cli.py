"""The ``kvorum`` command: etcd's server command line in front of a kvorum member.

``main`` turns the command line, the ``ETCD_*`` environment and an optional config file into
one :class:`~kvorum.config.ServerConfig` and hands it to the member,
``kvorum.server.process.run(config)``, returning the exit status.
Bad input stops it before anything starts, with one line on stderr and etcd's exit status:
2 for a malformed command line, 1 for values etcd's checks refuse.
"""

from __future__ import annotations

import importlib
import os
import sys
from collections.abc import Mapping, Sequence

from kvorum.config import (
    EXIT_INVALID,
    ConfigError,
    ServerConfig,
    help_text,
    parse_invocation,
    verify_bootstrap,
    version_text,
)

__all__ = ["main"]

PROGRAM = "kvorum"
SERVER_MODULE = "kvorum.server.process"


def _is_fresh_data_dir(config: ServerConfig) -> bool:
    """No data yet: the member will bootstrap, so etcd's bootstrap checks apply now."""
    try:
        return not os.listdir(config.data_dir)
    except FileNotFoundError:
        return True
    except NotADirectoryError:
        return False  # the member reports an unusable data dir with its own error


def _fail(message: str, exit_code: int) -> int:
    print(f"{PROGRAM}: {message}", file=sys.stderr)
    return exit_code


def _run_member(config: ServerConfig) -> int:
    """Hand over to ``kvorum.server.process.run(config)``, imported only now (it pulls in all)."""
    try:
        server = importlib.import_module(SERVER_MODULE)
    except ModuleNotFoundError as err:
        if err.name != SERVER_MODULE:
            raise  # a missing dependency inside the member is a real bug, not "not built"
        server = None
    run = getattr(server, "run", None)
    if not callable(run):
        return _fail("the member process is not built yet", EXIT_INVALID)
    status = run(config)
    return int(status) if status is not None else 0


def main(argv: Sequence[str] | None = None, environ: Mapping[str, str] | None = None) -> int:
    """Run the ``kvorum`` command; returns the process exit status.

    ``argv`` excludes the program name (default ``sys.argv[1:]``); ``environ`` defaults to
    ``os.environ`` — both are parameters so tests can drive the command in-process.
    """
    args = sys.argv[1:] if argv is None else list(argv)
    if args[:1] == ["doctor"]:
        # A subcommand etcd does not have, so it is told apart before etcd's flags are read.
        from kvorum.doctor import main as doctor_main

        return doctor_main(args[1:])
    env = os.environ if environ is None else environ
    try:
        invocation = parse_invocation(args, env)
        if invocation.action == "help":
            sys.stdout.write(help_text())
            return 0
        if invocation.action == "version":
            sys.stdout.write(version_text())
            return 0
        config = invocation.config
        assert config is not None  # a "run" invocation always carries its config
        if _is_fresh_data_dir(config):
            verify_bootstrap(config)
    except ConfigError as err:
        return _fail(err.message, err.exit_code)
    for warning in config.warnings:
        print(f"{PROGRAM}: warning: {warning}", file=sys.stderr)
    return _run_member(config)


if __name__ == "__main__":
    sys.exit(main())
