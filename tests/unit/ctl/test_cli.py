"""Command lookup, usage text and txn grammar, without a server."""

from __future__ import annotations

import io

import pytest

from kvorum.api.pb.etcdserverpb import rpc_pb2
from kvorum.ctl.commands.kv import GET_FLAGS, get_request, prefix_range_end
from kvorum.ctl.commands.txn import argify, parse_compare
from kvorum.ctl.errors import CtlExit
from kvorum.ctl.flags import parse_flags
from kvorum.ctl.main import find_command, run
from kvorum.ctl.usage import tabwrite


def _run(argv: list[str]) -> tuple[int, bytes, bytes]:
    out, err = io.BytesIO(), io.BytesIO()

    def no_connect(*_: object) -> object:
        raise AssertionError("this command line must not connect")

    rc = run(argv, stdin=io.BytesIO(), stdout=out, stderr=err, environ={},
             connector=no_connect)  # type: ignore[arg-type]  # fmt: skip
    return rc, out.getvalue(), err.getvalue()


def test_find_command_follows_cobra_strip_flags() -> None:
    chain, args, _ = find_command(["--endpoints", "x:1", "endpoint", "-w", "json", "status"])
    assert [c.name for c in chain] == ["etcdctl", "endpoint", "status"]
    assert args == ["--endpoints", "x:1", "-w", "json"]
    # An unknown flag is assumed to take a value, so "get" is eaten and "foo" is the command.
    chain, _, words = find_command(["--bogus", "get", "foo"])
    assert [c.name for c in chain] == ["etcdctl"] and words == ["foo"]


def test_unknown_command_with_suggestion() -> None:
    rc, out, err = _run(["gett"])
    message = 'Error: unknown command "gett" for "etcdctl"\n\nDid you mean this?\n\tget\n\n'
    assert (rc, out) == (1, b"")
    assert err == (message + "Run 'etcdctl --help' for usage.\n" + message).encode()


def test_flag_error_prints_usage_to_stdout() -> None:
    rc, out, err = _run(["get", "--bogus"])
    assert rc == 1
    assert err == b"Error: unknown flag: --bogus\n\nError: unknown flag: --bogus\n"
    assert out.startswith(b"NAME:\n\tget - Gets the key or a range of keys\n\nUSAGE:\n")
    assert b'      --consistency="l"\t\t\tLinearizable(l) or Serializable(s)\n' in out
    assert out.endswith(b"set the output format (fields, json, protobuf, simple, table)\n\n")


def test_argument_errors_come_before_connecting() -> None:
    assert _run(["get"]) == (
        128,
        b"",
        b"Error: get command needs one argument as key and an optional argument as range_end\n",
    )
    assert _run(["compaction", "x"])[2] == (
        b'Error: strconv.ParseInt: parsing "x": invalid syntax\n'
    )


def test_version() -> None:
    assert _run(["version"]) == (0, b"etcdctl version: 3.4.23\nAPI version: 3.4\n", b"")


def test_tabwriter_pads_columns_to_tab_stops() -> None:
    text = "      --limit=0\tMax\n      --print-value-only[=false]\tOnly\nX:\n  -h\thelp\n"
    assert tabwrite(text) == (
        "      --limit=0\t\t\t\tMax\n      --print-value-only[=false]\tOnly\nX:\n  -h\thelp\n"
    )


def test_get_request_prefix_and_sort() -> None:
    flags = parse_flags(GET_FLAGS, ["--prefix", "--sort-by=key", "--order=ascend", "--limit=2"])
    req = get_request(flags, ["c/"])
    assert (req.key, req.range_end, req.limit) == (b"c/", b"c0", 2)
    # Ascending by key is the server's order: clientv3 sends "none".
    none, key = rpc_pb2.RangeRequest.NONE, rpc_pb2.RangeRequest.KEY
    assert (req.sort_order, req.sort_target) == (none, key)
    empty = get_request(parse_flags(GET_FLAGS, ["--prefix"]), [""])
    assert (empty.key, empty.range_end) == (b"\x00", b"\x00")
    assert prefix_range_end(b"a\xff\xff") == b"b"
    assert prefix_range_end(b"\xff") == b"\x00"


def test_compare_grammar() -> None:
    cmp = parse_compare('mod("key1") > "3"')
    assert (cmp.key, cmp.target, cmp.result, cmp.mod_revision) == (
        b"key1", rpc_pb2.Compare.MOD, rpc_pb2.Compare.GREATER, 3)  # fmt: skip
    cmp = parse_compare('val("k") != "x y"')
    assert (cmp.target, cmp.result, cmp.value) == (
        rpc_pb2.Compare.VALUE, rpc_pb2.Compare.NOT_EQUAL, b"x y")  # fmt: skip
    with pytest.raises(CtlExit) as info:
        parse_compare("mod(foo) > 0")
    assert info.value.message == 'malformed comparison: mod(foo) > 0; got mod("")  ""'
    with pytest.raises(CtlExit) as info:
        parse_compare('foo("a") = "1"')
    assert info.value.message == 'malformed comparison: foo("a") = "1" (unknown target foo)'


def test_argify_quirks() -> None:
    assert argify('put k "hello world"') == ["put", "k", "hello world"]
    assert argify('get "t\\x31"') == ["get", "t1"]
    # etcdctl trims a single-quoted argument by the argument count, not its length.
    assert argify("get 'foo' x") == ["get", "f", "x"]
