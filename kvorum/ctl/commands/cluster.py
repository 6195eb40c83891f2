"""``member list|add|remove|update|promote`` with etcdctl 3.4's texts and codes."""

from __future__ import annotations

from kvorum.api.pb.etcdserverpb import rpc_pb2
from kvorum.ctl._conn import CallError
from kvorum.ctl.commands.kv import call_failed
from kvorum.ctl.commands.spec import Command, Context
from kvorum.ctl.errors import EXIT_BAD_ARGS, CtlExit
from kvorum.ctl.flags import FlagSpec
from kvorum.ctl.gofmt import go_quote
from kvorum.ctl.printers.simple import SimplePrinter

__all__ = ["MEMBER"]

_PEER_URLS = FlagSpec("peer-urls", "string", "", "comma separated peer URLs for the new member.")
_PEER_URLS_UPDATE = FlagSpec(
    "peer-urls", "string", "", "comma separated peer URLs for the updated member."
)
# After an add, etcdctl re-reads the member list until the answering member knows the new
# member; this bounds the rounds.
_SYNC_ROUNDS_MAX = 16


def _member_id(ctx: Context) -> int:
    """The hex member id argument, with strconv.ParseUint's errors."""
    if len(ctx.args) != 1:
        raise CtlExit(EXIT_BAD_ARGS, "member ID is not provided")
    text = ctx.args[0]
    reason = ""
    if not text or any(c not in "0123456789abcdefABCDEF" for c in text):
        reason = "invalid syntax"
    elif int(text, 16) >= 1 << 64:
        reason = "value out of range"
    if reason:
        err = f"strconv.ParseUint: parsing {go_quote(text)}: {reason}"
        raise CtlExit(EXIT_BAD_ARGS, f"bad member ID arg ({err}), expecting ID in Hex")
    return int(text, 16)


def _run_member_list(ctx: Context) -> int:
    conn = ctx.conn()
    try:
        resp = conn.member_list()
    except CallError as err:
        raise call_failed(err) from None
    ctx.emit(ctx.printer.member_list(resp))
    return 0


def _run_member_add(ctx: Context) -> int:
    if not ctx.args:
        raise CtlExit(EXIT_BAD_ARGS, "member name not provided")
    if len(ctx.args) > 1:
        text = "too many arguments"
        for arg in ctx.args:
            if arg.lower().startswith("http"):
                text += f", did you mean --peer-urls={arg}"
        raise CtlExit(EXIT_BAD_ARGS, text)
    name = ctx.args[0]
    peer_urls = ctx.flags.get_str("peer-urls")
    if not peer_urls:
        raise CtlExit(EXIT_BAD_ARGS, "member peer urls not provided")
    conn = ctx.conn()
    try:
        resp = conn.member_add(peer_urls.split(","), ctx.flags.get_bool("learner"))
    except CallError as err:
        raise call_failed(err) from None
    ctx.emit(ctx.printer.member_add(resp))
    if not isinstance(ctx.printer, SimplePrinter):
        return 0
    try:
        members = conn.member_list()
        for _ in range(_SYNC_ROUNDS_MAX):
            if members.header.member_id == resp.header.member_id:
                break
            # A quorum read brings the answering member up to date first.
            got = conn.range(rpc_pb2.RangeRequest(key=b"_"))
            resp.header.member_id = got.header.member_id
            members = conn.member_list()
    except CallError as err:
        raise call_failed(err) from None
    conf = [
        f"{name if m.ID == resp.member.ID else m.name}={url}"
        for m in members.members
        for url in m.peerURLs
    ]
    text = (
        f"\nETCD_NAME={go_quote(name)}\n"
        f"ETCD_INITIAL_CLUSTER={go_quote(','.join(conf))}\n"
        f"ETCD_INITIAL_ADVERTISE_PEER_URLS={go_quote(peer_urls)}\n"
        'ETCD_INITIAL_CLUSTER_STATE="existing"\n'
    )
    ctx.stdout.write(text.encode())
    return 0


def _run_member_remove(ctx: Context) -> int:
    member_id = _member_id(ctx)
    try:
        resp = ctx.conn().member_remove(member_id)
    except CallError as err:
        raise call_failed(err) from None
    ctx.emit(ctx.printer.member_remove(member_id, resp))
    return 0


def _run_member_update(ctx: Context) -> int:
    member_id = _member_id(ctx)
    peer_urls = ctx.flags.get_str("peer-urls")
    if not peer_urls:
        raise CtlExit(EXIT_BAD_ARGS, "member peer urls not provided")
    try:
        resp = ctx.conn().member_update(member_id, peer_urls.split(","))
    except CallError as err:
        raise call_failed(err) from None
    ctx.emit(ctx.printer.member_update(member_id, resp))
    return 0


def _run_member_promote(ctx: Context) -> int:
    member_id = _member_id(ctx)
    try:
        resp = ctx.conn().member_promote(member_id)
    except CallError as err:
        raise call_failed(err) from None
    ctx.emit(ctx.printer.member_promote(member_id, resp))
    return 0


MEMBER_LIST = Command(
    "list",
    "Lists all members in the cluster",
    long=(
        "When --write-out is set to simple, this command prints out comma-separated member "
        "lists for each endpoint.\nThe items in the lists are ID, Status, Name, Peer Addrs, "
        "Client Addrs, Is Learner."
    ),
    run=_run_member_list,
)
MEMBER = Command(
    "member",
    "Membership related commands",
    use_args="<subcommand>",
    children=(
        Command(
            "add",
            "Adds a member into the cluster",
            use_args="<memberName> [options]",
            flags=(
                FlagSpec("learner", "bool", False, "indicates if the new member is raft learner"),
                _PEER_URLS,
            ),
            run=_run_member_add,
        ),
        MEMBER_LIST,
        Command(
            "promote",
            "Promotes a non-voting member in the cluster",
            use_args="<memberID>",
            long="Promotes a non-voting learner member to a voting one in the cluster.",
            run=_run_member_promote,
        ),
        Command(
            "remove",
            "Removes a member from the cluster",
            use_args="<memberID>",
            run=_run_member_remove,
        ),
        Command(
            "update",
            "Updates a member in the cluster",
            use_args="<memberID> [options]",
            flags=(_PEER_URLS_UPDATE,),
            run=_run_member_update,
        ),
    ),
)
