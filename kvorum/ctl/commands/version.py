"""``version``: the etcdctl and API versions kvorumctl is a drop-in for."""

from __future__ import annotations

from kvorum.ctl.commands.spec import Command, Context
from kvorum.ctl.usage import API_VERSION, ETCDCTL_VERSION

__all__ = ["VERSION"]


def _run_version(ctx: Context) -> int:
    ctx.stdout.write(f"etcdctl version: {ETCDCTL_VERSION}\nAPI version: {API_VERSION}\n".encode())
    return 0


VERSION = Command("version", "Prints the version of etcdctl", run=_run_version)
