"""kvorumctl's command tree: etcdctl 3.4's commands, the implemented ones with runners.

Commands etcdctl has and kvorumctl does not implement yet stay in the tree without a runner, so
that help, suggestions and "unknown command" behave as etcdctl's, and running one says so.
"""

from __future__ import annotations

from kvorum.ctl.commands.auth import AUTH
from kvorum.ctl.commands.check import CHECK
from kvorum.ctl.commands.cluster import MEMBER
from kvorum.ctl.commands.elect import ELECT
from kvorum.ctl.commands.endpoint import ENDPOINT
from kvorum.ctl.commands.kv import COMPACTION, DEL, GET, PUT
from kvorum.ctl.commands.lease import LEASE
from kvorum.ctl.commands.lock import LOCK
from kvorum.ctl.commands.maintenance import ALARM, DEFRAG
from kvorum.ctl.commands.move_leader import MOVE_LEADER
from kvorum.ctl.commands.role import ROLE
from kvorum.ctl.commands.snapshot import SNAPSHOT
from kvorum.ctl.commands.spec import Command, Context
from kvorum.ctl.commands.txn import TXN
from kvorum.ctl.commands.user import USER
from kvorum.ctl.commands.version import VERSION
from kvorum.ctl.commands.watch import WATCH
from kvorum.ctl.flags import GLOBAL_FLAGS

__all__ = ["HELP", "ROOT", "Command", "Context", "is_placeholder"]


def _group(name: str, short: str, children: tuple[tuple[str, str], ...], use: str = "") -> Command:
    leaves = tuple(Command(n, text) for n, text in children)
    return Command(name, short, use_args=use or "<subcommand>", children=leaves)


_PLACEHOLDERS = (
    _group("completion", "Generate the autocompletion script for the specified shell", (
        ("bash", "Generate the autocompletion script for bash"),
        ("fish", "Generate the autocompletion script for fish"),
        ("powershell", "Generate the autocompletion script for powershell"),
        ("zsh", "Generate the autocompletion script for zsh"))),
    Command("make-mirror", "Makes a mirror at the destination etcd cluster",
            use_args="[options] <destination>"),
    Command("migrate", "Migrates keys in a v2 store to a mvcc store"),
)  # fmt: skip
# cobra's own help command; main.py gives it its behaviour.
HELP = Command("help", "Help about any command", use_args="[command]")

ROOT = Command(
    "etcdctl",
    "A simple command line client for etcd3.",
    persistent_flags=GLOBAL_FLAGS,
    children=tuple(
        sorted(
            (
                GET,
                PUT,
                DEL,
                TXN,
                COMPACTION,
                MEMBER,
                ENDPOINT,
                VERSION,
                LEASE,
                ALARM,
                DEFRAG,
                HELP,
                WATCH,
                AUTH,
                USER,
                ROLE,
                LOCK,
                ELECT,
                SNAPSHOT,
                MOVE_LEADER,
                CHECK,
                *_PLACEHOLDERS,
            ),
            key=lambda c: c.name,
        )
    ),
)


def is_placeholder(cmd: Command) -> bool:
    """A leaf command etcdctl runs that kvorumctl has no runner for yet (a group only prints
    its help, as cobra does for a command without a runner)."""
    return cmd.run is None and not cmd.children and cmd is not HELP
