"""``auth enable|disable`` (etcdctl 3.4 has no ``auth status``) and the output of every
auth, user and role command in each ``--write-out`` format.

etcdctl prints these responses as its printers do: ``simple`` a sentence, ``json`` and
``protobuf`` the raw response, ``fields`` the header (and the permissions or roles where the
response has them), ``table`` nothing (exit 4). ``auth enable``/``disable`` print their sentence
whatever the format.
"""

from __future__ import annotations

from typing import Any

from google.protobuf.message import Message

from kvorum.api.pb.authpb import auth_pb2
from kvorum.api.pb.etcdserverpb import rpc_pb2
from kvorum.ctl._conn import CallError
from kvorum.ctl.commands.kv import call_failed, prefix_range_end
from kvorum.ctl.commands.spec import Command, Context
from kvorum.ctl.errors import EXIT_BAD_ARGS, EXIT_BAD_FEATURE, EXIT_ERROR, CtlExit
from kvorum.ctl.gofmt import go_quote
from kvorum.ctl.printers import Rendered
from kvorum.ctl.printers.json import go_json

__all__ = ["AUTH", "auth_call", "fields_header", "role_get_rendered", "show"]

_ROOT_ROLE_MISSING = "etcdserver: root user does not have root role"
# `auth enable` adds the root role at most once and then retries; a bound all the same.
_ENABLE_ATTEMPTS_MAX = 3


def auth_call(ctx: Context, method: str, req: Message) -> Any:
    """One Auth RPC; a failure ends the command as etcdctl's ``ExitWithError(ExitError)``."""
    try:
        return ctx.conn().auth_call(method, req)
    except CallError as err:
        raise call_failed(err) from None


def fields_header(header: rpc_pb2.ResponseHeader) -> str:
    return (
        f'"ClusterID" : {header.cluster_id}\n"MemberID" : {header.member_id}\n'
        f'"Revision" : {header.revision}\n"RaftTerm" : {header.raft_term}\n'
    )


def show(ctx: Context, resp: Any, simple: bytes, fields: str | None = "") -> None:
    """Print an auth response: ``simple`` is the simple format's text, ``fields`` what the
    fields format adds after the header (``None``: the fields format refuses it)."""
    fmt = ctx.options.write_out
    ctx.printer  # noqa: B018 -- builds the printer: an unknown format ends the run here
    if fmt == "simple":
        ctx.emit(Rendered(simple))
    elif fmt == "json":
        ctx.emit(Rendered(go_json(resp).encode() + b"\n"))
    elif fmt == "protobuf":
        ctx.emit(Rendered(resp.SerializeToString()))
    elif fmt == "fields" and fields is not None:
        ctx.emit(Rendered((fields_header(resp.header) + fields).encode()))
    else:
        raise CtlExit(EXIT_BAD_FEATURE, f"{fmt} not supported as output format")


def _simple_range(perm: auth_pb2.Permission) -> bytes:
    key, end = perm.key, perm.range_end
    text = b"\t[" + key + b", " + (end + b")" if end != b"\x00" else b"<open ended>")
    if prefix_range_end(key) == end:
        text += b" (prefix " + key + b")"
    return text + b"\n"


def _simple_perms(perms: list[auth_pb2.Permission], kinds: tuple[int, ...]) -> bytes:
    out = b""
    for perm in perms:
        if perm.permType in kinds:
            out += b"\t" + perm.key + b"\n" if not perm.range_end else _simple_range(perm)
    return out


def role_get_rendered(name: str, resp: rpc_pb2.AuthRoleGetResponse) -> tuple[bytes, str]:
    """``role get``'s simple text and fields lines (also printed by ``user get --detail``)."""
    perms = list(resp.perm)
    read = (auth_pb2.Permission.READ, auth_pb2.Permission.READWRITE)
    write = (auth_pb2.Permission.WRITE, auth_pb2.Permission.READWRITE)
    simple = f"Role {name}\nKV Read:\n".encode() + _simple_perms(perms, read)
    simple += b"KV Write:\n" + _simple_perms(perms, write)
    fields = ""
    for perm in perms:
        # Go's Println puts a space between `"PermType" : ` and the name: two spaces.
        fields += f'"PermType" :  {auth_pb2.Permission.Type.Name(perm.permType)}\n'
        fields += f'"Key" : {go_quote(perm.key)}\n"RangeEnd" : {go_quote(perm.range_end)}\n'
    return simple, fields


def _run_enable(ctx: Context) -> int:
    if ctx.args:
        raise CtlExit(EXIT_BAD_ARGS, "auth enable command does not accept any arguments")
    conn = ctx.conn()
    for _ in range(_ENABLE_ATTEMPTS_MAX):
        try:
            conn.auth_call("AuthEnable", rpc_pb2.AuthEnableRequest())
            break
        except CallError as err:
            if err.message != _ROOT_ROLE_MISSING:
                raise call_failed(err) from None
            # etcdctl makes the root role the root user needs, then tries again.
            ctx.stderr.write(err.log_line().encode())
            auth_call(ctx, "RoleAdd", rpc_pb2.AuthRoleAddRequest(name="root"))
            grant = rpc_pb2.AuthUserGrantRoleRequest(user="root", role="root")
            auth_call(ctx, "UserGrantRole", grant)
    else:
        raise CtlExit(EXIT_ERROR, _ROOT_ROLE_MISSING)
    ctx.stdout.write(b"Authentication Enabled\n")
    return 0


def _run_disable(ctx: Context) -> int:
    if ctx.args:
        raise CtlExit(EXIT_BAD_ARGS, "auth disable command does not accept any arguments")
    auth_call(ctx, "AuthDisable", rpc_pb2.AuthDisableRequest())
    ctx.stdout.write(b"Authentication Disabled\n")
    return 0


AUTH = Command(
    "auth",
    "Enable or disable authentication",
    use_args="<enable or disable>",
    children=(
        Command("disable", "Disables authentication", run=_run_disable),
        Command("enable", "Enables authentication", run=_run_enable),
    ),
)
