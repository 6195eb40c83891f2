"""pflag semantics of the flag parser and etcdctl's ETCDCTL_* rules."""

from __future__ import annotations

import pytest

from kvorum.ctl.errors import CtlExit
from kvorum.ctl.flags import (
    GLOBAL_FLAGS,
    FlagError,
    FlagSpec,
    apply_env,
    global_options,
    parse_duration_ns,
    parse_flags,
)

LOCAL = (
    FlagSpec("prefix", "bool", False, "p"),
    FlagSpec("limit", "int", 0, "l"),
    FlagSpec("interactive", "bool", False, "i", "i"),
)
SPECS = (*LOCAL, *GLOBAL_FLAGS)


def test_long_forms_and_interspersed_arguments() -> None:
    p = parse_flags(SPECS, ["k1", "--limit=3", "--prefix", "k2", "--write-out", "json"])
    assert p.args == ["k1", "k2"]
    assert p.values["limit"] == 3 and p.values["prefix"] is True
    assert p.values["write-out"] == "json"
    assert p.changed == {"limit", "prefix", "write-out"}


@pytest.mark.parametrize("argv", [["-w", "json"], ["-wjson"], ["-w=json"]])
def test_shorthand_forms(argv: list[str]) -> None:
    assert parse_flags(SPECS, argv).values["write-out"] == "json"


def test_grouped_bool_shorthands_and_help() -> None:
    p = parse_flags(SPECS, ["-ih"])
    assert p.values["interactive"] is True and p.help


def test_bool_takes_no_separate_value_and_double_dash_ends_flags() -> None:
    p = parse_flags(SPECS, ["--prefix", "false", "--", "--limit=2", "-x"])
    assert p.values["prefix"] is True
    assert p.args == ["false", "--limit=2", "-x"]
    assert parse_flags(SPECS, ["--prefix=false"]).values["prefix"] is False


def test_string_slice_first_set_replaces_default_then_appends() -> None:
    p = parse_flags(SPECS, ["--endpoints=a:1,b:2", "--endpoints", "c:3"])
    assert p.values["endpoints"] == ("a:1", "b:2", "c:3")
    assert parse_flags(SPECS, []).values["endpoints"] == ("127.0.0.1:2379",)


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--bogus"], "unknown flag: --bogus"),
        (["-z"], "unknown shorthand flag: 'z' in -z"),
        (["-w"], "flag needs an argument: 'w' in -w"),
        (["--limit"], "flag needs an argument: --limit"),
        (["---x"], "bad flag syntax: ---x"),
        (
            ["--limit=x"],
            'invalid argument "x" for "--limit" flag: strconv.ParseInt: parsing "x": '
            "invalid syntax",
        ),
        (
            ["--prefix=maybe"],
            'invalid argument "maybe" for "--prefix" flag: strconv.ParseBool: parsing "maybe": '
            "invalid syntax",
        ),
        (
            ["--dial-timeout=5"],
            'invalid argument "5" for "--dial-timeout" flag: time: missing unit in duration "5"',
        ),
    ],
)
def test_errors_are_pflag_texts(argv: list[str], message: str) -> None:
    with pytest.raises(FlagError) as info:
        parse_flags(SPECS, argv)
    assert str(info.value) == message


@pytest.mark.parametrize(
    ("text", "ns"),
    [("5s", 5_000_000_000), ("300ms", 300_000_000), ("1m30s", 90_000_000_000),
     ("1.5h", 5_400_000_000_000), ("0", 0), ("2us", 2_000)],
)  # fmt: skip
def test_durations(text: str, ns: int) -> None:
    assert parse_duration_ns(text) == ns


def test_env_fills_unset_flags_and_ignores_bad_values() -> None:
    p = parse_flags(SPECS, [])
    warnings: list[str] = []
    env = {"ETCDCTL_WRITE_OUT": "json", "ETCDCTL_HEX": "maybe", "ETCDCTL_ENDPOINTS": "x:1,y:2"}
    apply_env(GLOBAL_FLAGS, p, env, warnings.append)
    opts = global_options(p)
    assert (opts.write_out, opts.hex, opts.endpoints) == ("json", False, ("x:1", "y:2"))
    assert warnings == []


def test_env_unknown_variable_is_warned() -> None:
    p = parse_flags(SPECS, [])
    warnings: list[str] = []
    apply_env(GLOBAL_FLAGS, p, {"ETCDCTL_BOGUS": "1"}, warnings.append)
    assert len(warnings) == 1
    expected = " W | pkg/flags: unrecognized environment variable ETCDCTL_BOGUS=1\n"
    assert warnings[0].endswith(expected)


def test_env_shadowed_by_command_line_flag_is_fatal() -> None:
    p = parse_flags(SPECS, ["--endpoints=a:1"])
    with pytest.raises(CtlExit) as info:
        apply_env(GLOBAL_FLAGS, p, {"ETCDCTL_ENDPOINTS": "b:2"}, lambda _: None)
    assert info.value.code == 1 and info.value.message is None
    assert info.value.prefix.endswith(
        ' C | pkg/flags: conflicting environment variable "ETCDCTL_ENDPOINTS" is shadowed by '
        "corresponding command-line flag (either unset environment variable or disable flag)\n"
    )
