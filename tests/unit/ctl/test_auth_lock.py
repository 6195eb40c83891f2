"""Pure pieces of ``auth``/``user``/``role``/``lock``: password reading as etcdctl reads it,
permission ranges, the role printer, and the exit texts of a lock's child command."""

from __future__ import annotations

import io
import signal

import pytest

from kvorum.api.pb.authpb import auth_pb2
from kvorum.api.pb.etcdserverpb import rpc_pb2
from kvorum.ctl._conn import connect
from kvorum.ctl.commands import ROOT, is_placeholder
from kvorum.ctl.commands._password import (
    ask_password,
    options_with_password,
    read_new_password,
    scan_word,
)
from kvorum.ctl.commands.auth import role_get_rendered
from kvorum.ctl.commands.lock import _exec_error, _exit_text, first_created
from kvorum.ctl.commands.role import perm_range
from kvorum.ctl.commands.spec import Context
from kvorum.ctl.errors import EXIT_BAD_ARGS, CtlExit
from kvorum.ctl.flags import GLOBAL_FLAGS, ParsedFlags, global_options, parse_flags


@pytest.mark.parametrize(
    ("stdin", "word"),
    [
        (b"pw\n", "pw"),
        (b"  pw rest\n", "pw"),
        (b"\tpw", "pw"),
        (b"\n", ""),
        (b"", ""),
        (b"  \nlater\n", ""),
        (b"p\xc3\xbcw\r\n", "p\u00fcw"),
    ],
)
def test_scan_word_reads_like_go_scanf(stdin: bytes, word: str) -> None:
    assert scan_word(io.BytesIO(stdin)) == word


def _streams(stdin: bytes) -> tuple[io.BytesIO, io.BytesIO, io.BytesIO]:
    return io.BytesIO(stdin), io.BytesIO(), io.BytesIO()


def test_ask_password_prompts_on_stdout_and_reads_one_line() -> None:
    stdin, out, err = _streams(b"  secret  \r\nnext\n")
    assert ask_password("Password: ", stdin, out, err) == "secret"
    assert out.getvalue() == b"Password: \n"
    # stty, run on a stdin that is no terminal, complains twice, as under etcdctl.
    assert err.getvalue().count(b"stty: 'standard input': Inappropriate ioctl") == 2
    assert stdin.read() == b"next\n"  # nothing past the line was consumed


@pytest.mark.parametrize(
    ("stdin", "message"),
    [(b"a\nb\n", "given passwords are different"), (b"\n", "empty password")],
)
def test_new_password_must_be_given_twice(stdin: bytes, message: str) -> None:
    with pytest.raises(CtlExit) as failed:
        read_new_password("bob", *_streams(stdin))
    assert (failed.value.code, failed.value.message) == (EXIT_BAD_ARGS, message)


def test_new_password_prompts() -> None:
    stdin, out, err = _streams(b"pw\npw\n")
    assert read_new_password("bob", stdin, out, err) == "pw"
    assert out.getvalue() == (b"Password of bob: \nType password of bob again for confirmation: \n")


@pytest.mark.parametrize(
    ("argv", "asks"),
    [
        ([], False),
        (["--user=root:pw"], False),
        (["--user=root", "--password=pw"], False),
        (["--user=root"], True),
    ],
)
def test_global_user_without_password_asks_for_it(argv: list[str], asks: bool) -> None:
    options = global_options(parse_flags(GLOBAL_FLAGS, argv))
    stdin, out, err = _streams(b"typed\n")
    result = options_with_password(options, stdin, out, err)
    assert (out.getvalue() == b"Password: \n") is asks
    assert result.password == ("typed" if asks else options.password)


def _ctx(argv: list[str]) -> Context:
    specs = [*GLOBAL_FLAGS, *ROOT.child("role").child("grant-permission").flags]  # type: ignore[union-attr]
    parsed: ParsedFlags = parse_flags(specs, argv)
    stdin, out, err = _streams(b"")
    return Context(parsed, parsed.args, stdin, out, err, {}, connect)


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["k"], (b"k", b"")),
        (["k", "z"], (b"k", b"z")),
        (["k", "--prefix"], (b"k", b"l")),
        (["a/\uffff", "--prefix"], ("a/\uffff".encode(), b"a/\xef\xbf\xc0")),
        (["k", "--from-key"], (b"k", b"\x00")),
        ([""], (b"\x00", b"")),
        (["", "--prefix"], (b"\x00", b"\x00")),
        (["", "--from-key"], (b"\x00", b"\x00")),
    ],
)
def test_perm_range(argv: list[str], expected: tuple[bytes, bytes]) -> None:
    ctx = _ctx(argv)
    assert perm_range(ctx, ctx.args) == expected


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["k", "--prefix", "--from-key"], "--from-key and --prefix flags are mutually exclusive"),
        (["", "--prefix", "--from-key"], "--from-key and --prefix flags are mutually exclusive"),
        (["k", "z", "--prefix"], "unexpected endkey argument with --prefix flag"),
        (["k", "z", "--from-key"], "unexpected endkey argument with --from-key flag"),
    ],
)
def test_perm_range_refuses(argv: list[str], message: str) -> None:
    ctx = _ctx(argv)
    with pytest.raises(CtlExit) as failed:
        perm_range(ctx, ctx.args)
    assert (failed.value.code, failed.value.message) == (EXIT_BAD_ARGS, message)


def test_role_get_rendered_as_etcdctl() -> None:
    perm = auth_pb2.Permission
    resp = rpc_pb2.AuthRoleGetResponse(
        perm=[
            perm(permType=perm.READ, key=b"\x00", range_end=b"\x00"),
            perm(permType=perm.WRITE, key=b"a", range_end=b"z"),
            perm(permType=perm.READWRITE, key=b"foo/", range_end=b"foo0"),
            perm(permType=perm.READ, key=b"k1"),
        ]
    )
    simple, fields = role_get_rendered("rw", resp)
    assert simple == (
        b"Role rw\nKV Read:\n\t[\x00, <open ended>\n\t[foo/, foo0) (prefix foo/)\n\tk1\n"
        b"KV Write:\n\t[a, z)\n\t[foo/, foo0) (prefix foo/)\n"
    )
    assert fields.splitlines()[:3] == [
        '"PermType" :  READ',
        '"Key" : "\\x00"',
        '"RangeEnd" : "\\x00"',
    ]
    assert fields.splitlines()[-3:] == ['"PermType" :  READ', '"Key" : "k1"', '"RangeEnd" : ""']


def test_child_failures_read_as_go_prints_them() -> None:
    assert _exit_text(3) == "exit status 3"
    assert _exit_text(-signal.SIGKILL) == "signal: killed"
    assert _exit_text(-signal.SIGTERM) == "signal: terminated"
    assert _exec_error(["no-such-command"], {"PATH": "/nonexistent"}) == (
        'exec: "no-such-command": executable file not found in $PATH'
    )
    assert _exec_error(["/nonexistent/x"], {}) == (
        'exec: "/nonexistent/x": stat /nonexistent/x: no such file or directory'
    )
    assert _exec_error(["sh"], {"PATH": "/bin:/usr/bin"}) is None


def test_first_created_reads_the_oldest_or_newest_key_of_a_prefix() -> None:
    req = first_created(b"L/", last=True, max_create_revision=7)
    assert (req.key, req.range_end, req.limit, req.max_create_revision) == (b"L/", b"L0", 1, 7)
    assert req.sort_target == rpc_pb2.RangeRequest.CREATE
    assert req.sort_order == rpc_pb2.RangeRequest.DESCEND
    assert first_created(b"L/").sort_order == rpc_pb2.RangeRequest.ASCEND


def test_lock_elect_auth_user_role_have_runners() -> None:
    for name in ("lock", "elect"):
        command = ROOT.child(name)
        assert command is not None and command.run is not None and not is_placeholder(command)
    for group in ("auth", "user", "role"):
        command = ROOT.child(group)
        assert command is not None and command.children
        assert all(c.run is not None for c in command.children)
