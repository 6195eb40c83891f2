"""Go value syntax as etcd's flags read it (each expectation was checked against etcd 3.4)."""

from __future__ import annotations

import pytest

from kvorum.config import (
    GoValueError,
    parse_go_bool,
    parse_go_duration_ns,
    parse_go_int,
    parse_go_uint,
    parse_initial_cluster,
    parse_url,
    parse_url_list,
)

S = 1_000_000_000


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("0", 0),
        ("100", 100),
        ("0x10", 16),
        ("0X1f", 31),
        ("010", 8),  # Go base 0: a leading zero means octal
        ("0o17", 15),
        ("0b101", 5),
        ("1_000", 1000),
        ("0x_1f", 31),
        ("18446744073709551615", 2**64 - 1),
    ],
)
def test_unsigned_integers_follow_go_base_zero(text: str, value: int) -> None:
    assert parse_go_uint(text) == value


@pytest.mark.parametrize(
    "text", ["", "abc", "+50", "-1", "08", "1.5", " 5", "5 ", "1__0", "_1", "1_", "0x", "٣"]
)
def test_unsigned_integers_refuse_what_go_refuses(text: str) -> None:
    with pytest.raises(GoValueError):
        parse_go_uint(text)


def test_integer_ranges_match_the_go_type() -> None:
    assert parse_go_uint("4294967295", bits=32) == 2**32 - 1
    with pytest.raises(GoValueError, match="out of range"):
        parse_go_uint("4294967296", bits=32)
    with pytest.raises(GoValueError, match="out of range"):
        parse_go_uint("18446744073709551616")
    assert parse_go_int("-9223372036854775808") == -(2**63)
    with pytest.raises(GoValueError, match="out of range"):
        parse_go_int("9223372036854775808")


def test_signed_integers_take_a_sign() -> None:
    assert parse_go_int("+5") == 5
    assert parse_go_int("-0x10") == -16
    for bad in ("--5", "+-5", "+", "-"):
        with pytest.raises(GoValueError):
            parse_go_int(bad)


@pytest.mark.parametrize("text", ["1", "t", "T", "TRUE", "true", "True"])
def test_true_spellings(text: str) -> None:
    assert parse_go_bool(text) is True


@pytest.mark.parametrize("text", ["0", "f", "F", "FALSE", "false", "False"])
def test_false_spellings(text: str) -> None:
    assert parse_go_bool(text) is False


@pytest.mark.parametrize("text", ["yes", "no", "tRue", "", "on", "2"])
def test_other_boolean_words_are_refused(text: str) -> None:
    with pytest.raises(GoValueError):
        parse_go_bool(text)


@pytest.mark.parametrize(
    ("text", "nanoseconds"),
    [
        ("0", 0),
        ("5s", 5 * S),
        ("100ms", 100_000_000),
        ("1.5h", 5400 * S),
        ("1h30m", 5400 * S),
        (".5s", S // 2),
        ("1.s", S),
        ("-1s", -S),
        ("+2m", 120 * S),
        ("3us", 3000),
        ("3µs", 3000),
        ("3μs", 3000),
        ("7ns", 7),
        ("1h0m0.5s", 3600 * S + S // 2),
    ],
)
def test_durations_follow_time_parse_duration(text: str, nanoseconds: int) -> None:
    assert parse_go_duration_ns(text) == nanoseconds


@pytest.mark.parametrize("text", ["", "5", "1x", "s", ".s", "1.5", "-", "1h 2m", "1e3s", "1d"])
def test_malformed_durations_are_refused(text: str) -> None:
    with pytest.raises(GoValueError):
        parse_go_duration_ns(text)


@pytest.mark.parametrize(
    ("text", "canonical"),
    [
        ("http://127.0.0.1:2379", "http://127.0.0.1:2379"),
        ("HTTPS://Node1.example:2380", "https://Node1.example:2380"),
        ("  http://localhost:2379 ", "http://localhost:2379"),
        ("http://[::1]:2379", "http://[::1]:2379"),
        ("unix://localhost:1234", "unix://localhost:1234"),
        ("unixs://x:1", "unixs://x:1"),
        ("http://:2379", "http://:2379"),  # an empty host binds every interface
        ("http://a:", "http://a:"),  # Go's SplitHostPort allows an empty port
    ],
)
def test_urls_are_validated_and_canonical(text: str, canonical: str) -> None:
    assert parse_url(text) == canonical


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("foo", "scheme must be http, https, unix, or unixs"),
        ("ftp://1.2.3.4:5", "scheme must be"),
        ("localhost:2379", "scheme must be"),
        ("", "scheme must be"),
        ("http://1.2.3.4", 'does not have the form "host:port"'),
        ("http://a:1:2", 'does not have the form "host:port"'),
        ("http:1.2.3.4:5", 'does not have the form "host:port"'),
        ("http://1.2.3.4:5/", "must not contain a path"),
        ("http://1.2.3.4:5/v2", "must not contain a path"),
        ("http://a b:5", "invalid character"),
        ("http://a:x5", "invalid port"),
    ],
)
def test_bad_urls_are_refused_with_etcds_reason(text: str, reason: str) -> None:
    with pytest.raises(GoValueError, match=reason.replace("(", r"\(")):
        parse_url(text)


def test_url_lists_are_sorted_and_deduplicated() -> None:
    urls = parse_url_list("http://b:1,http://a:1,http://b:1")
    assert urls == ("http://a:1", "http://b:1")


def test_initial_cluster_groups_urls_by_name() -> None:
    members = parse_initial_cluster(
        "n1=http://10.0.0.1:2381,n2=http://10.0.0.2:2380,n1=http://10.0.0.1:2380,,"
    )
    assert members == (
        ("n1", ("http://10.0.0.1:2380", "http://10.0.0.1:2381")),
        ("n2", ("http://10.0.0.2:2380",)),
    )
    assert parse_initial_cluster("") == ()
