"""``move-leader <transferee-member-id>``: hand leadership to another member, as etcdctl does.

etcdctl asks each endpoint in turn for its status until one says it is the leader, then calls
``Maintenance.MoveLeader`` on that one (only the leader can transfer its leadership). The
first endpoint that fails to answer ends the run; no leader among the endpoints is an error
of the arguments (exit 128), as etcdctl has it.
"""

from __future__ import annotations

from kvorum.ctl._conn import CallError, Conn
from kvorum.ctl.commands.kv import call_failed
from kvorum.ctl.commands.spec import Command, Context
from kvorum.ctl.errors import EXIT_BAD_ARGS, EXIT_BAD_FEATURE, CtlExit
from kvorum.ctl.gofmt import go_quote
from kvorum.ctl.printers.json import JsonPrinter
from kvorum.ctl.printers.simple import SimplePrinter

__all__ = ["MOVE_LEADER", "parse_member_id"]

_U64_LIMIT = 1 << 64


def parse_member_id(text: str) -> int:
    """``strconv.ParseUint(text, 16, 64)`` with Go's error texts (``CtlExit``, exit 128)."""
    reason = ""
    if not text or any(c not in "0123456789abcdefABCDEF" for c in text):
        reason = "invalid syntax"
    elif int(text, 16) >= _U64_LIMIT:
        reason = "value out of range"
    if reason:
        raise CtlExit(EXIT_BAD_ARGS, f"strconv.ParseUint: parsing {go_quote(text)}: {reason}")
    return int(text, 16)


def _find_leader(ctx: Context) -> tuple[Conn, int]:
    """The connection to the first endpoint that leads, and the leader's id."""
    endpoints = list(ctx.options.endpoints)
    for ep in endpoints:
        # clientv3's Status(ctx, ep) dials ``ep`` itself (its log lines name it passthrough);
        # MoveLeader then goes through the client made for that endpoint.
        try:
            status = ctx.connect([ep], True).status()
        except CallError as err:
            raise call_failed(err) from None
        if status.header.member_id == status.leader:
            return ctx.connect([ep]), status.leader
    raise CtlExit(EXIT_BAD_ARGS, f"no leader endpoint given at [{' '.join(endpoints)}]")


def _run_move_leader(ctx: Context) -> int:
    if len(ctx.args) != 1:
        raise CtlExit(EXIT_BAD_ARGS, "move-leader command needs 1 argument")
    target = parse_member_id(ctx.args[0])
    printer = ctx.printer
    conn, leader_id = _find_leader(ctx)
    try:
        resp = conn.move_leader(target)
    except CallError as err:
        raise call_failed(err) from None
    if isinstance(printer, SimplePrinter):
        ctx.stdout.write(f"Leadership transferred from {leader_id:x} to {target:x}\n".encode())
        return 0
    if isinstance(printer, JsonPrinter):
        # etcd 3.4 answers MoveLeader without a header: the JSON of an empty message.
        del resp
        ctx.stdout.write(b"{}\n")
        return 0
    # etcdctl's fields, table and protobuf printers refuse it -- after the transfer happened.
    raise CtlExit(EXIT_BAD_FEATURE, f"{ctx.options.write_out} not supported as output format")


MOVE_LEADER = Command(
    "move-leader",
    "Transfers leadership to another etcd cluster member.",
    use_args="<transferee-member-id>",
    run=_run_move_leader,
)
