"""Go's formatting rules as kvorumctl reproduces them (expected values from Go 1.x docs and
etcdctl 3.4 output)."""

from __future__ import annotations

import pytest

from kvorum.ctl.gofmt import (
    go_duration,
    go_hex_bytes,
    go_json_bytes,
    go_json_string,
    go_quote,
    go_unquote,
    humanize_bytes,
    parse_go_bool,
    parse_go_int,
)


@pytest.mark.parametrize(
    ("data", "quoted"),
    [
        (b"foo", '"foo"'),
        (b'q"uote\\', '"q\\"uote\\\\"'),
        (b"tab\there\nnewline", '"tab\\there\\nnewline"'),
        (b"\x00\x01\x7f", '"\\x00\\x01\\x7f"'),
        (b"bin\xff", '"bin\\xff"'),
        ("ü日本".encode(), '"ü日本"'),
        ("\u00a0\u2028".encode(), '"\\u00a0\\u2028"'),
        ("\U0001f600".encode(), '"\U0001f600"'),
    ],
)
def test_go_quote(data: bytes, quoted: str) -> None:
    assert go_quote(data) == quoted


@pytest.mark.parametrize(
    ("literal", "value"),
    [
        ('"foo"', "foo"),
        ('"t\\x31"', "t1"),
        ('"a\\tb\\n"', "a\tb\n"),
        ('"\\u00fc\\101"', "üA"),
        ("`raw\\n`", "raw\\n"),
    ],
)
def test_go_unquote(literal: str, value: str) -> None:
    assert go_unquote(literal) == value


@pytest.mark.parametrize("literal", ['"open', '"bad\\q"', "'single'", '"\\x4"', '"a"b"'])
def test_go_unquote_rejects(literal: str) -> None:
    with pytest.raises(ValueError, match="invalid syntax"):
        go_unquote(literal)


@pytest.mark.parametrize(
    ("ns", "text"),
    [
        (0, "0s"),
        (1, "1ns"),
        (850_000, "850µs"),
        (2_367_503, "2.367503ms"),
        (1_500_000_000, "1.5s"),
        (5_000_000_000, "5s"),
        (62_500_000_000, "1m2.5s"),
        (3_600_000_000_000, "1h0m0s"),
        (-1_000_000, "-1ms"),
    ],
)
def test_go_duration(ns: int, text: str) -> None:
    assert go_duration(ns) == text


@pytest.mark.parametrize(
    ("size", "text"),
    [(0, "0 B"), (9, "9 B"), (999, "999 B"), (1000, "1.0 kB"), (20480, "20 kB"),
     (24576, "25 kB"), (123_456_789, "124 MB"), (1_500_000, "1.5 MB")],
)  # fmt: skip
def test_humanize_bytes(size: int, text: str) -> None:
    assert humanize_bytes(size) == text


def test_json_string_escapes_html_and_invalid_utf8() -> None:
    assert go_json_string(b'<a&b>"\\\n') == '"\\u003ca\\u0026b\\u003e\\"\\\\\\n"'
    assert go_json_string(b"bad\xff") == '"bad\ufffd"'
    assert go_json_bytes(b"foo") == '"Zm9v"'


def test_hex_bytes() -> None:
    assert go_hex_bytes(b"foo") == "\\x66\\x6f\\x6f"


def test_parse_errors_carry_go_text() -> None:
    assert parse_go_bool("T") is True
    with pytest.raises(ValueError, match=r'strconv.ParseBool: parsing "maybe": invalid syntax'):
        parse_go_bool("maybe")
    assert parse_go_int("ff", 16) == 255
    assert parse_go_int("-12") == -12
    with pytest.raises(ValueError, match=r'strconv.ParseInt: parsing "zz": invalid syntax'):
        parse_go_int("zz", 16)
    with pytest.raises(ValueError, match="value out of range"):
        parse_go_int("9223372036854775808")
