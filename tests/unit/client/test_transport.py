"""Endpoint parsing and the "surely not sent" rule that allows repeating a write."""

from __future__ import annotations

import pytest

from kvorum.client.transport import ClientConfig, Endpoint, Pool, never_sent, parse_endpoint


@pytest.mark.parametrize(
    ("url", "endpoint"),
    [
        ("http://127.0.0.1:2379", Endpoint("http://127.0.0.1:2379", "127.0.0.1:2379", False)),
        ("https://h:2379", Endpoint("https://h:2379", "h:2379", True)),
        ("h:1", Endpoint("h:1", "h:1", False)),
        ("unix:///tmp/s", Endpoint("unix:///tmp/s", "unix:/tmp/s", False)),
    ],
)
def test_parse_endpoint(url: str, endpoint: Endpoint) -> None:
    assert parse_endpoint(url) == endpoint


def test_bad_scheme_and_empty_endpoints_are_refused() -> None:
    with pytest.raises(ValueError):
        parse_endpoint("ftp://h:1")
    with pytest.raises(ValueError):
        Pool(ClientConfig(endpoints=()))


class _Err:
    def __init__(self, details: str) -> None:
        self._details = details

    def details(self) -> str:
        return self._details


@pytest.mark.parametrize(
    ("details", "unsent"),
    [
        ("failed to connect to all addresses; last error: Connection refused", True),
        ("DNS resolution failed for nowhere:1", True),
        ("Socket closed", False),
        ("Connection reset by peer", False),
        ("etcdserver: request timed out", False),
        ("etcdserver: no leader", False),
    ],
)
def test_never_sent(details: str, unsent: bool) -> None:
    assert never_sent(_Err(details)) is unsent


def test_keepalive_options_respect_etcds_minimum_ping_interval() -> None:
    options = dict(ClientConfig(endpoints=("h:1",)).channel_options())
    # etcd's default --grpc-keepalive-min-time is 5 s; pinging faster gets the client cut off.
    assert options["grpc.keepalive_time_ms"] >= 5000
    assert options["grpc.max_reconnect_backoff_ms"] <= 1000


def test_advance_moves_round_robin_once_per_failure() -> None:
    pool = Pool(ClientConfig(endpoints=("a:1", "b:1", "c:1")))
    pool.advance(0)
    assert pool.current == 1
    pool.advance(0)  # a second failure report about "a" must not skip "b"
    assert pool.current == 1
    pool.advance(1)
    pool.advance(2)
    assert pool.current == 0
