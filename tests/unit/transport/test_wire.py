"""Framing, handshake records, back-off and log rate limiting (the pure pieces)."""

from __future__ import annotations

import random

import pytest
from hypothesis import given
from hypothesis import strategies as st

from kvorum.transport.backoff import Backoff, RateLimiter
from kvorum.transport.codec import CodecError
from kvorum.transport.urls import format_peer_url, parse_peer_url
from kvorum.transport.wire import (
    FrameKind,
    FrameReader,
    Hello,
    HelloReply,
    HelloStatus,
    StreamKind,
    frame_header,
)

frames = st.lists(
    st.tuples(st.sampled_from(FrameKind), st.binary(max_size=300)), min_size=1, max_size=20
)


def _stream(items: list[tuple[FrameKind, bytes]]) -> bytes:
    return b"".join(frame_header(kind, len(payload)) + payload for kind, payload in items)


@given(frames, st.lists(st.integers(min_value=1, max_value=97), max_size=40))
def test_frames_come_out_whole_however_the_stream_is_split(
    items: list[tuple[FrameKind, bytes]], cuts: list[int]
) -> None:
    stream = _stream(items)
    reader = FrameReader(max_frame_bytes=1000)
    out: list[tuple[int, bytes]] = []
    pos = 0
    for size in cuts:
        out += [(k, bytes(p)) for k, p in reader.feed(stream[pos : pos + size])]
        pos += size
    out += [(k, bytes(p)) for k, p in reader.feed(stream[pos:])]
    assert out == [(int(k), p) for k, p in items]
    assert reader.buffered_bytes == 0


def test_payload_views_stay_valid_after_more_data_arrives() -> None:
    reader = FrameReader(max_frame_bytes=100)
    first = reader.feed(_stream([(FrameKind.MESSAGE, b"hello")]) + b"\x01\x00")
    reader.feed(b"\x00\x00\x02ab")
    assert bytes(first[0][1]) == b"hello"


def test_oversized_frame_is_refused_from_its_header() -> None:
    reader = FrameReader(max_frame_bytes=1024)
    with pytest.raises(CodecError, match="exceeds the limit of 1024"):
        reader.feed(frame_header(FrameKind.MESSAGE, 1025))


def test_unknown_frame_kind_is_refused() -> None:
    with pytest.raises(CodecError, match="unknown frame kind 99"):
        FrameReader(100).feed(b"\x63\x00\x00\x00\x00")


def test_hello_round_trip_and_garbage() -> None:
    hello = Hello(StreamKind.BULK, 0xC1, 0x8E9E05C52164694D, 2**64 - 1)
    assert Hello.decode(hello.encode()) == (hello, 1)
    reply = HelloReply(HelloStatus.CLUSTER_MISMATCH, 7, 9)
    assert HelloReply.decode(reply.encode()) == reply
    with pytest.raises(CodecError, match="not a kvorum peer connection"):
        Hello.decode(b"GET / HTTP/1.1\r\nHost: example\r\n\r\n"[: Hello.SIZE])
    with pytest.raises(CodecError, match="must be"):
        Hello.decode(b"KVRM")
    bad_kind = bytearray(hello.encode())
    bad_kind[6] = 9
    with pytest.raises(CodecError, match="unknown stream kind 9"):
        Hello.decode(bytes(bad_kind))


def test_backoff_doubles_to_the_cap_with_jitter_and_resets() -> None:
    backoff = Backoff(0.05, 2.0, random.Random(7))
    steps = [0.05, 0.1, 0.2, 0.4, 0.8, 1.6, 2.0, 2.0, 2.0]
    for step in steps:
        delay = backoff.next_delay_s()
        assert step / 2 <= delay <= step
    backoff.reset()
    assert backoff.next_delay_s() <= 0.05
    # The same seed replays the same delays.
    a, b = Backoff(0.05, 2.0, random.Random(3)), Backoff(0.05, 2.0, random.Random(3))
    assert [a.next_delay_s() for _ in range(5)] == [b.next_delay_s() for _ in range(5)]


def test_backoff_survives_very_many_attempts() -> None:
    backoff = Backoff(0.05, 2.0, random.Random(1))
    for _ in range(2000):
        delay = backoff.next_delay_s()
    assert 1.0 <= delay <= 2.0


def test_rate_limiter_allows_one_per_key_per_interval() -> None:
    now = [100.0]
    limiter = RateLimiter(10.0, lambda: now[0], max_keys=2)
    assert limiter.allow("a")
    assert not limiter.allow("a")
    assert limiter.allow("b")
    now[0] += 9.9
    assert not limiter.allow("a")
    now[0] += 0.2
    assert limiter.allow("a")


def test_peer_urls() -> None:
    address = parse_peer_url("http://127.0.0.1:2380")
    assert (address.host, address.port, address.tls) == ("127.0.0.1", 2380, False)
    assert parse_peer_url("https://[::1]:2380/").tls
    assert format_peer_url("::1", 2380) == "http://[::1]:2380"
    for bad in ("127.0.0.1:2380", "http://host", "unix:///x", "http://h:2380/path", "http://h:x"):
        with pytest.raises(ValueError, match="peer URL"):
            parse_peer_url(bad)
