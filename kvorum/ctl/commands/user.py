"""``user add|delete|get|list|passwd|grant-role|revoke-role`` with etcdctl 3.4's texts, password
prompts and exit codes."""

from __future__ import annotations

from kvorum.api.pb.authpb import auth_pb2
from kvorum.api.pb.etcdserverpb import rpc_pb2
from kvorum.ctl.commands._password import read_new_password, scan_word
from kvorum.ctl.commands.auth import auth_call, role_get_rendered, show
from kvorum.ctl.commands.spec import Command, Context
from kvorum.ctl.errors import EXIT_BAD_ARGS, CtlExit
from kvorum.ctl.flags import FlagSpec

__all__ = ["USER"]


def _new_password(ctx: Context, name: str) -> str:
    """The password of user ``name``: one word from stdin with ``--interactive=false``, else
    asked twice on the terminal."""
    if not ctx.flags.get_bool("interactive"):
        return scan_word(ctx.stdin)
    return read_new_password(name, ctx.stdin, ctx.stdout, ctx.stderr)


def _run_add(ctx: Context) -> int:
    if len(ctx.args) != 1:
        raise CtlExit(EXIT_BAD_ARGS, "user add command requires user name as its argument")
    arg = ctx.args[0]
    no_password = ctx.flags.get_bool("no-password")
    password = ""
    if no_password:
        name = arg
    elif ctx.flags.get_str("new-user-password"):
        name, password = arg, ctx.flags.get_str("new-user-password")
    elif ":" in arg:
        name, _, password = arg.partition(":")
        if not name:
            raise CtlExit(EXIT_BAD_ARGS, "empty user name is not allowed")
    else:
        name = arg
        password = _new_password(ctx, arg)
    req = rpc_pb2.AuthUserAddRequest(
        name=name, password=password, options=auth_pb2.UserAddOptions(no_password=no_password)
    )
    resp = auth_call(ctx, "UserAdd", req)
    show(ctx, resp, f"User {name} created\n".encode())
    return 0


def _run_delete(ctx: Context) -> int:
    if len(ctx.args) != 1:
        raise CtlExit(EXIT_BAD_ARGS, "user delete command requires user name as its argument")
    name = ctx.args[0]
    resp = auth_call(ctx, "UserDelete", rpc_pb2.AuthUserDeleteRequest(name=name))
    show(ctx, resp, f"User {name} deleted\n".encode())
    return 0


def _run_get(ctx: Context) -> int:
    if len(ctx.args) != 1:
        raise CtlExit(EXIT_BAD_ARGS, "user get command requires user name as its argument")
    name = ctx.args[0]
    resp: rpc_pb2.AuthUserGetResponse = auth_call(
        ctx, "UserGet", rpc_pb2.AuthUserGetRequest(name=name)
    )
    if not ctx.flags.get_bool("detail"):
        roles = "".join(f" {r}" for r in resp.roles)
        show(ctx, resp, f"User: {name}\nRoles:{roles}\n".encode(), None)
        return 0
    # etcdctl writes this line itself, in every format, then each role as `role get` does.
    ctx.printer  # noqa: B018 -- an unknown format ends the run before anything is printed
    ctx.stdout.write(f"User: {name}\n".encode())
    for role in resp.roles:
        ctx.stdout.write(b"\n")
        role_resp = auth_call(ctx, "RoleGet", rpc_pb2.AuthRoleGetRequest(role=role))
        simple, fields = role_get_rendered(role, role_resp)
        show(ctx, role_resp, simple, fields)
    return 0


def _run_list(ctx: Context) -> int:
    if ctx.args:
        raise CtlExit(EXIT_BAD_ARGS, "user list command requires no arguments")
    resp = auth_call(ctx, "UserList", rpc_pb2.AuthUserListRequest())
    show(ctx, resp, "".join(f"{u}\n" for u in resp.users).encode(), None)
    return 0


def _run_passwd(ctx: Context) -> int:
    if len(ctx.args) != 1:
        raise CtlExit(EXIT_BAD_ARGS, "user passwd command requires user name as its argument")
    name = ctx.args[0]
    password = _new_password(ctx, name)
    req = rpc_pb2.AuthUserChangePasswordRequest(name=name, password=password)
    resp = auth_call(ctx, "UserChangePassword", req)
    show(ctx, resp, b"Password updated\n")
    return 0


def _run_grant_role(ctx: Context) -> int:
    if len(ctx.args) != 2:
        raise CtlExit(
            EXIT_BAD_ARGS, "user grant command requires user name and role name as its argument"
        )
    user, role = ctx.args
    req = rpc_pb2.AuthUserGrantRoleRequest(user=user, role=role)
    resp = auth_call(ctx, "UserGrantRole", req)
    show(ctx, resp, f"Role {role} is granted to user {user}\n".encode())
    return 0


def _run_revoke_role(ctx: Context) -> int:
    if len(ctx.args) != 2:
        raise CtlExit(
            EXIT_BAD_ARGS, "user revoke-role requires user name and role name as its argument"
        )
    user, role = ctx.args
    req = rpc_pb2.AuthUserRevokeRoleRequest(name=user, role=role)
    resp = auth_call(ctx, "UserRevokeRole", req)
    show(ctx, resp, f"Role {role} is revoked from user {user}\n".encode())
    return 0


_ADD_FLAGS = (
    FlagSpec("interactive", "bool", True,
             "Read password from stdin instead of interactive terminal"),
    FlagSpec("new-user-password", "string", "", "Supply password from the command line flag"),
    FlagSpec("no-password", "bool", False, "Create a user without password (CN based auth only)"),
)  # fmt: skip
_PASSWD_FLAGS = (
    FlagSpec("interactive", "bool", True,
             "If true, read password from stdin instead of interactive terminal"),
)  # fmt: skip

USER = Command(
    "user",
    "User related commands",
    use_args="<subcommand>",
    children=(
        Command("add", "Adds a new user", use_args="<user name or user:password> [options]",
                flags=_ADD_FLAGS, run=_run_add),
        Command("delete", "Deletes a user", use_args="<user name>", run=_run_delete),
        Command("get", "Gets detailed information of a user", use_args="<user name> [options]",
                flags=(FlagSpec("detail", "bool", False,
                                "Show permissions of roles granted to the user"),),
                run=_run_get),
        Command("grant-role", "Grants a role to a user", use_args="<user name> <role name>",
                run=_run_grant_role),
        Command("list", "Lists all users", run=_run_list),
        Command("passwd", "Changes password of user", use_args="<user name> [options]",
                flags=_PASSWD_FLAGS, run=_run_passwd),
        Command("revoke-role", "Revokes a role from a user", use_args="<user name> <role name>",
                run=_run_revoke_role),
    ),
)  # fmt: skip
