"""``role add|delete|get|list|grant-permission|revoke-permission`` with etcdctl 3.4's texts and
exit codes, key ranges given as ``key [endkey]``, ``--prefix`` or ``--from-key``."""

from __future__ import annotations

import os

from kvorum.api.pb.authpb import auth_pb2
from kvorum.api.pb.etcdserverpb import rpc_pb2
from kvorum.ctl.commands.auth import auth_call, role_get_rendered, show
from kvorum.ctl.commands.kv import prefix_range_end
from kvorum.ctl.commands.spec import Command, Context
from kvorum.ctl.errors import EXIT_BAD_ARGS, CtlExit
from kvorum.ctl.flags import FlagSpec
from kvorum.ctl.gofmt import go_quote

__all__ = ["ROLE"]

_EXCLUSIVE = "--from-key and --prefix flags are mutually exclusive"
# The server reads a range end of a single zero byte as "every key from `key` on".
_OPEN_END = b"\x00"


def perm_range(ctx: Context, args: list[str]) -> tuple[bytes, bytes]:
    """etcdctl's ``permRange``: (key, range_end) for ``key [endkey]`` and the range flags."""
    prefix, from_key = ctx.flags.get_bool("prefix"), ctx.flags.get_bool("from-key")
    key = os.fsencode(args[0])
    if not key:
        if prefix and from_key:
            raise CtlExit(EXIT_BAD_ARGS, _EXCLUSIVE)
        # An empty key is the interval starting at "\x00"; with a flag, the whole key space.
        return b"\x00", _OPEN_END if (prefix or from_key) else b""
    if len(args) == 1:
        if prefix:
            if from_key:
                raise CtlExit(EXIT_BAD_ARGS, _EXCLUSIVE)
            return key, prefix_range_end(key)
        return key, _OPEN_END if from_key else b""
    if prefix:
        raise CtlExit(EXIT_BAD_ARGS, "unexpected endkey argument with --prefix flag")
    if from_key:
        raise CtlExit(EXIT_BAD_ARGS, "unexpected endkey argument with --from-key flag")
    return key, os.fsencode(args[1])


def _one_role(ctx: Context, verb: str) -> str:
    if len(ctx.args) != 1:
        raise CtlExit(EXIT_BAD_ARGS, f"role {verb} command requires role name as its argument")
    return ctx.args[0]


def _run_add(ctx: Context) -> int:
    name = _one_role(ctx, "add")
    resp = auth_call(ctx, "RoleAdd", rpc_pb2.AuthRoleAddRequest(name=name))
    show(ctx, resp, f"Role {name} created\n".encode())
    return 0


def _run_delete(ctx: Context) -> int:
    name = _one_role(ctx, "delete")
    resp = auth_call(ctx, "RoleDelete", rpc_pb2.AuthRoleDeleteRequest(role=name))
    show(ctx, resp, f"Role {name} deleted\n".encode())
    return 0


def _run_get(ctx: Context) -> int:
    name = _one_role(ctx, "get")
    resp = auth_call(ctx, "RoleGet", rpc_pb2.AuthRoleGetRequest(role=name))
    simple, fields = role_get_rendered(name, resp)
    show(ctx, resp, simple, fields)
    return 0


def _run_list(ctx: Context) -> int:
    if ctx.args:
        raise CtlExit(EXIT_BAD_ARGS, "role list command requires no arguments")
    resp = auth_call(ctx, "RoleList", rpc_pb2.AuthRoleListRequest())
    simple = "".join(f"{r}\n" for r in resp.roles).encode()
    fields = '"Roles" :' + "".join(f" {go_quote(r)}" for r in resp.roles) + "\n"
    show(ctx, resp, simple, fields)
    return 0


def _permission_type(text: str) -> int:
    """clientv3's ``StrToPermissionType``: READ, WRITE or READWRITE in any case."""
    try:
        return auth_pb2.Permission.Type.Value(text.upper())
    except ValueError:
        raise CtlExit(EXIT_BAD_ARGS, f"invalid permission type: {text}") from None


def _run_grant_permission(ctx: Context) -> int:
    if len(ctx.args) < 3:
        raise CtlExit(
            EXIT_BAD_ARGS,
            "role grant command requires role name, permission type, and key [endkey] as its "
            "argument",
        )
    name = ctx.args[0]
    perm_type = _permission_type(ctx.args[1])
    key, range_end = perm_range(ctx, ctx.args[2:])
    perm = auth_pb2.Permission(permType=perm_type, key=key, range_end=range_end)  # type: ignore[arg-type]
    req = rpc_pb2.AuthRoleGrantPermissionRequest(name=name, perm=perm)
    resp = auth_call(ctx, "RoleGrantPermission", req)
    show(ctx, resp, f"Role {name} updated\n".encode())
    return 0


def _run_revoke_permission(ctx: Context) -> int:
    if len(ctx.args) < 2:
        raise CtlExit(
            EXIT_BAD_ARGS,
            "role revoke-permission command requires role name and key [endkey] as its argument",
        )
    name = ctx.args[0]
    key, range_end = perm_range(ctx, ctx.args[1:])
    req = rpc_pb2.AuthRoleRevokePermissionRequest(role=name, key=key, range_end=range_end)
    resp = auth_call(ctx, "RoleRevokePermission", req)
    # etcdctl names the key as it was typed (empty stays empty) and the computed range end.
    typed = os.fsencode(ctx.args[1])
    role = name.encode()
    if not range_end:
        simple = b"Permission of key " + typed + b" is revoked from role " + role + b"\n"
    elif range_end != _OPEN_END:
        simple = b"Permission of range [" + typed + b", " + range_end + b") is revoked from role "
        simple += role + b"\n"
    else:
        simple = b"Permission of range [" + typed + b", <open ended> is revoked from role "
        simple += role + b"\n"
    show(ctx, resp, simple)
    return 0


_GRANT_FLAGS = (
    FlagSpec("from-key", "bool", False,
             "grant a permission of keys that are greater than or equal to the given key using "
             "byte compare"),
    FlagSpec("prefix", "bool", False, "grant a prefix permission"),
)  # fmt: skip
_REVOKE_FLAGS = (
    FlagSpec("from-key", "bool", False,
             "revoke a permission of keys that are greater than or equal to the given key using "
             "byte compare"),
    FlagSpec("prefix", "bool", False, "revoke a prefix permission"),
)  # fmt: skip

ROLE = Command(
    "role",
    "Role related commands",
    use_args="<subcommand>",
    children=(
        Command("add", "Adds a new role", use_args="<role name>", run=_run_add),
        Command("delete", "Deletes a role", use_args="<role name>", run=_run_delete),
        Command("get", "Gets detailed information of a role", use_args="<role name>",
                run=_run_get),
        Command("grant-permission", "Grants a key to a role",
                use_args="[options] <role name> <permission type> <key> [endkey]",
                flags=_GRANT_FLAGS, run=_run_grant_permission),
        Command("list", "Lists all roles", run=_run_list),
        Command("revoke-permission", "Revokes a key from a role",
                use_args="<role name> <key> [endkey]", flags=_REVOKE_FLAGS,
                run=_run_revoke_permission),
    ),
)  # fmt: skip
