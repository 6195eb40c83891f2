"""``watch [options] <key> [range_end]``: events as they happen (no exec-command, no
interactive mode yet)."""

from __future__ import annotations

import os

from kvorum.api.pb.etcdserverpb import rpc_pb2
from kvorum.ctl._conn import CallError
from kvorum.ctl.commands.kv import prefix_range_end
from kvorum.ctl.commands.spec import Command, Context
from kvorum.ctl.errors import EXIT_BAD_ARGS, EXIT_ERROR, CtlExit
from kvorum.ctl.flags import FlagSpec

__all__ = ["WATCH"]

# etcdctl's ExitInterrupted: the server ended the watch.
_EXIT_INTERRUPTED = 5
_COMPACTED = "etcdserver: mvcc: required revision has been compacted"


def watch_request(ctx: Context) -> rpc_pb2.WatchCreateRequest:
    """The create request for ``watch``'s arguments and flags."""
    args = ctx.args
    if ctx.flags.get_bool("interactive") or "--" in args:
        raise CtlExit(EXIT_ERROR, "kvorumctl does not implement interactive or exec watch yet")
    if not args or len(args) > 2:
        raise CtlExit(EXIT_BAD_ARGS, "bad number of arguments")
    prefix = ctx.flags.get_bool("prefix")
    key = os.fsencode(args[0])
    req = rpc_pb2.WatchCreateRequest(key=key, prev_kv=ctx.flags.get_bool("prev-kv"))
    if len(args) == 2:
        if prefix:
            raise CtlExit(EXIT_BAD_ARGS, "`range_end` and `--prefix` are mutually exclusive")
        req.range_end = os.fsencode(args[1])
    elif prefix:
        req.range_end = prefix_range_end(key) if key else b"\x00"
        if not key:
            req.key = b"\x00"
    if ctx.flags.get_int("rev") > 0:
        req.start_revision = ctx.flags.get_int("rev")
    return req


def _run_watch(ctx: Context) -> int:
    req = watch_request(ctx)
    conn = ctx.conn()
    try:
        for resp in conn.watch(req):
            if resp.created and not resp.events:
                continue
            if resp.canceled:
                # etcdctl reports it, prints the (empty) response, and the watch ends.
                reason = _COMPACTED if resp.compact_revision else resp.cancel_reason
                ctx.stderr.write(f"watch was canceled ({reason})\n".encode())
            ctx.emit(ctx.printer.watch(resp))
            ctx.stdout.flush()
            ctx.stderr.flush()
            if resp.canceled:
                break
    except CallError as err:
        raise CtlExit(EXIT_ERROR, err.message) from None
    raise CtlExit(_EXIT_INTERRUPTED, "watch is canceled by the server")


WATCH = Command(
    "watch",
    "Watches events stream on keys or prefixes",
    use_args="[options] [key or prefix] [range_end] [--] [exec-command arg1 arg2 ...]",
    flags=(
        FlagSpec("interactive", "bool", False, "Interactive mode", "i"),
        FlagSpec("prefix", "bool", False, "Watch on a prefix if prefix is set"),
        FlagSpec(
            "prev-kv", "bool", False, "get the previous key-value pair before the event happens"
        ),
        FlagSpec("rev", "int", 0, "Revision to start watching"),
    ),
    run=_run_watch,
)
