"""The command tree's node type and the context a command runs in."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import BinaryIO

from kvorum.ctl._conn import CallError, Conn
from kvorum.ctl.commands._password import options_with_password
from kvorum.ctl.errors import EXIT_BAD_CONNECTION, CtlExit
from kvorum.ctl.flags import (
    GLOBAL_FLAGS,
    FlagSpec,
    GlobalOptions,
    ParsedFlags,
    apply_env,
    global_options,
)
from kvorum.ctl.printers import Printer, Rendered, make_printer

__all__ = ["Command", "Connector", "Context", "Runner"]

Connector = Callable[[GlobalOptions, Sequence[str] | None, bool], Conn]


@dataclass(slots=True)
class Context:
    """Everything a command needs: its flags and arguments, the process streams, and -- once
    ``setup()`` ran -- the global options, the printer and connections.

    etcdctl reads ``ETCDCTL_*`` and builds its printer only when a command first creates a
    client, after the command checked its own arguments; ``setup()`` is that moment, so
    argument errors win over environment warnings and over an unknown ``--write-out``.
    """

    flags: ParsedFlags
    args: list[str]
    stdin: BinaryIO
    stdout: BinaryIO
    stderr: BinaryIO
    environ: Mapping[str, str]
    connector: Connector
    _options: GlobalOptions | None = None
    _printer: Printer | None = None
    _conn: Conn | None = None
    opened: list[Conn] = field(default_factory=list)

    def setup(self) -> None:
        """Apply ``ETCDCTL_*`` to the global flags and build the printer (once)."""
        if self._options is not None:
            return
        apply_env(GLOBAL_FLAGS, self.flags, self.environ, self._warn)
        # `--user` without a password asks for it here, before the printer, as etcdctl does.
        self._options = options_with_password(
            global_options(self.flags), self.stdin, self.stdout, self.stderr
        )
        self._printer = make_printer(self._options.write_out, self._options.hex)

    def _warn(self, line: str) -> None:
        self.stderr.write(line.encode())

    @property
    def options(self) -> GlobalOptions:
        self.setup()
        assert self._options is not None
        return self._options

    @property
    def printer(self) -> Printer:
        self.setup()
        assert self._printer is not None
        return self._printer

    def conn(self) -> Conn:
        """The client on ``--endpoints`` (made once)."""
        if self._conn is None:
            self._conn = self.connect(None)
        return self._conn

    def connect(self, endpoints: Sequence[str] | None, passthrough: bool = False) -> Conn:
        """A new client on ``endpoints``; closed when the command ends."""
        try:
            conn = self.connector(self.options, endpoints, passthrough)
        except CallError as err:
            # Creating the client failed (authentication): etcdctl's mustClient exits 2.
            raise CtlExit(EXIT_BAD_CONNECTION, err.message, prefix=err.log_line()) from None
        self.opened.append(conn)
        self.stderr.write("".join(conn.warnings).encode())
        return conn

    def close(self) -> None:
        for conn in self.opened:
            conn.close()
        self.opened.clear()

    def emit(self, rendered: Rendered) -> None:
        self.stdout.write(rendered.out)
        self.stderr.write(rendered.err)


Runner = Callable[[Context], int]


@dataclass(frozen=True, slots=True)
class Command:
    """One node of the command tree: ``name``, the rest of cobra's ``Use`` line, help texts,
    local and persistent flags, a runner (``None`` for groups) and children."""

    name: str
    short: str
    use_args: str = ""
    long: str = ""
    flags: tuple[FlagSpec, ...] = ()
    persistent_flags: tuple[FlagSpec, ...] = ()
    run: Runner | None = None
    children: tuple[Command, ...] = ()

    def child(self, name: str) -> Command | None:
        for c in self.children:
            if c.name == name:
                return c
        return None

    @staticmethod
    def flag_specs(chain: Sequence[Command]) -> list[FlagSpec]:
        """Every flag that applies to the last command of ``chain``."""
        specs = list(chain[-1].flags)
        for c in chain:
            specs.extend(c.persistent_flags)
        return specs
