"""``lease grant|revoke|timetolive|list|keep-alive --once`` with etcdctl 3.4's texts and codes."""

from __future__ import annotations

from kvorum.ctl._conn import CallError
from kvorum.ctl.commands.spec import Command, Context
from kvorum.ctl.errors import EXIT_BAD_ARGS, EXIT_BAD_CONNECTION, EXIT_ERROR, CtlExit
from kvorum.ctl.flags import FlagSpec
from kvorum.ctl.gofmt import parse_go_int

__all__ = ["LEASE"]


def _lease_id(text: str) -> int:
    try:
        return parse_go_int(text, 16)
    except ValueError as err:
        raise CtlExit(EXIT_BAD_ARGS, f"bad lease ID arg ({err}), expecting ID in Hex") from None


def _run_grant(ctx: Context) -> int:
    if len(ctx.args) != 1:
        raise CtlExit(EXIT_BAD_ARGS, "lease grant command needs TTL argument")
    try:
        ttl_s = parse_go_int(ctx.args[0])
    except ValueError as err:
        raise CtlExit(EXIT_BAD_ARGS, f"bad TTL ({err})") from None
    try:
        resp = ctx.conn().lease_grant(ttl_s)
    except CallError as err:
        raise CtlExit(
            EXIT_ERROR, f"failed to grant lease ({err.message})", prefix=err.log_line()
        ) from None
    ctx.emit(ctx.printer.lease_grant(resp))
    return 0


def _run_revoke(ctx: Context) -> int:
    if len(ctx.args) != 1:
        raise CtlExit(EXIT_BAD_ARGS, "lease revoke command needs 1 argument")
    lease_id = _lease_id(ctx.args[0])
    try:
        resp = ctx.conn().lease_revoke(lease_id)
    except CallError as err:
        raise CtlExit(
            EXIT_ERROR, f"failed to revoke lease ({err.message})", prefix=err.log_line()
        ) from None
    ctx.emit(ctx.printer.lease_revoke(lease_id, resp))
    return 0


def _run_timetolive(ctx: Context) -> int:
    if len(ctx.args) != 1:
        raise CtlExit(EXIT_BAD_ARGS, "lease timetolive command needs lease ID as argument")
    keys = ctx.flags.get_bool("keys")
    lease_id = _lease_id(ctx.args[0])
    try:
        resp = ctx.conn().lease_time_to_live(lease_id, keys)
    except CallError as err:
        raise CtlExit(EXIT_BAD_CONNECTION, err.message, prefix=err.log_line()) from None
    ctx.emit(ctx.printer.lease_timetolive(resp, keys))
    return 0


def _run_list(ctx: Context) -> int:
    try:
        resp = ctx.conn().lease_leases()
    except CallError as err:
        raise CtlExit(EXIT_BAD_CONNECTION, err.message, prefix=err.log_line()) from None
    ctx.emit(ctx.printer.lease_list(resp))
    return 0


def _run_keep_alive(ctx: Context) -> int:
    if len(ctx.args) != 1:
        raise CtlExit(EXIT_BAD_ARGS, "lease keep-alive command needs lease ID as argument")
    lease_id = _lease_id(ctx.args[0])
    if not ctx.flags.get_bool("once"):
        raise CtlExit(EXIT_ERROR, "kvorumctl implements only `lease keep-alive --once` so far")
    try:
        resp = ctx.conn().lease_keep_alive_once(lease_id)
    except CallError as err:
        raise CtlExit(EXIT_BAD_CONNECTION, err.message) from None
    ctx.emit(ctx.printer.lease_keepalive(resp))
    return 0


LEASE = Command(
    "lease",
    "Lease related commands",
    use_args="<subcommand>",
    children=(
        Command("grant", "Creates leases", use_args="<ttl>", run=_run_grant),
        Command(
            "keep-alive",
            "Keeps leases alive (renew)",
            use_args="[options] <leaseID>",
            flags=(
                FlagSpec(
                    "once",
                    "bool",
                    False,
                    "Resets the keep-alive time to its original value and exits immediately",
                ),
            ),
            run=_run_keep_alive,
        ),
        Command("list", "List all active leases", run=_run_list),
        Command("revoke", "Revokes leases", use_args="<leaseID>", run=_run_revoke),
        Command(
            "timetolive",
            "Get lease information",
            use_args="<leaseID> [options]",
            flags=(FlagSpec("keys", "bool", False, "Get keys attached to this lease"),),
            run=_run_timetolive,
        ),
    ),
)
