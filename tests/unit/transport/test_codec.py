"""The message codec: exact round trips over every field, and one error for any garbage."""

from __future__ import annotations

import contextlib
import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kvorum.raft.types import (
    ConfState,
    Entry,
    EntryType,
    Message,
    MessageType,
    Snapshot,
    SnapshotMetadata,
)
from kvorum.transport.codec import (
    CodecError,
    decode_message,
    encode_message,
    encode_message_parts,
)

U64 = st.integers(min_value=0, max_value=2**64 - 1)
ids = st.lists(U64, max_size=5).map(tuple)

entries = st.builds(
    Entry,
    term=U64,
    index=U64,
    type=st.sampled_from(EntryType),
    data=st.binary(max_size=64),
)
snapshots = st.builds(
    Snapshot,
    data=st.binary(max_size=256),
    metadata=st.builds(
        SnapshotMetadata,
        conf_state=st.builds(ConfState, voters=ids, learners=ids),
        index=U64,
        term=U64,
    ),
)
messages = st.builds(
    Message,
    type=st.sampled_from(MessageType),
    to=U64,
    frm=U64,
    term=U64,
    log_term=U64,
    index=U64,
    entries=st.lists(entries, max_size=6).map(tuple),
    commit=U64,
    snapshot=st.none() | snapshots,
    reject=st.booleans(),
    reject_hint=U64,
    context=st.binary(max_size=32),
)


@given(messages)
def test_every_field_survives_a_round_trip(msg: Message) -> None:
    encoded = encode_message(msg)
    decoded = decode_message(encoded)
    assert decoded == msg
    assert type(decoded.type) is MessageType
    assert all(type(e.type) is EntryType for e in decoded.entries)
    # Decoding from a memoryview (what the receiver does) gives the same value.
    assert decode_message(memoryview(encoded)) == msg


@given(messages)
def test_parts_report_their_total_length(msg: Message) -> None:
    parts: list[bytes | bytearray | memoryview] = []
    size = encode_message_parts(msg, parts)
    assert size == sum(len(p) for p in parts) == len(encode_message(msg))


@given(messages, st.data())
def test_every_truncation_is_refused(msg: Message, data: st.DataObject) -> None:
    encoded = encode_message(msg)
    cut = data.draw(st.integers(min_value=0, max_value=len(encoded) - 1))
    with pytest.raises(CodecError):
        decode_message(encoded[:cut])


@given(messages, st.binary(min_size=1, max_size=8))
def test_trailing_bytes_are_refused(msg: Message, extra: bytes) -> None:
    with pytest.raises(CodecError, match="trailing"):
        decode_message(encode_message(msg) + extra)


@settings(max_examples=300)
@given(st.binary(max_size=400))
def test_random_bytes_decode_or_raise_codec_error_only(garbage: bytes) -> None:
    try:
        msg = decode_message(garbage)
    except CodecError:
        return
    # The rare garbage that parses must be a faithful encoding of what it parsed to.
    assert encode_message(msg) == garbage


@settings(max_examples=300)
@given(messages, st.data())
def test_flipped_bytes_decode_or_raise_codec_error_only(msg: Message, data: st.DataObject) -> None:
    encoded = bytearray(encode_message(msg))
    pos = data.draw(st.integers(min_value=0, max_value=len(encoded) - 1))
    encoded[pos] ^= data.draw(st.integers(min_value=1, max_value=255))
    with contextlib.suppress(CodecError):
        decode_message(bytes(encoded))


HEARTBEAT = Message(MessageType.HEARTBEAT, to=2, frm=1, term=5, commit=9)


def _patch(msg: Message, offset: int, fmt: str, value: int) -> bytes:
    buf = bytearray(encode_message(msg))
    struct.pack_into(fmt, buf, offset, value)
    return bytes(buf)


@pytest.mark.parametrize(
    ("raw", "match"),
    [
        (b"", "shorter than"),
        (_patch(HEARTBEAT, 0, ">B", 200), "unknown message type 200"),
        (_patch(HEARTBEAT, 1, ">B", 0x80), "unknown message flags"),
        # 2**32-1 entries claimed by a 66-byte message: refused before any loop runs.
        (_patch(HEARTBEAT, 58, ">I", 2**32 - 1), "claims 4294967295 entries"),
        (_patch(HEARTBEAT, 62, ">I", 1000), "context of 1000 bytes"),
        (
            _patch(Message(MessageType.APP, entries=(Entry(1, 1, data=b"x"),)), 66 + 16, ">B", 9),
            "unknown entry type 9",
        ),
        (
            _patch(Message(MessageType.APP, entries=(Entry(1, 1, data=b"x"),)), 66 + 17, ">I", 99),
            "entry data of 99 bytes",
        ),
        (
            _patch(Message(MessageType.SNAP, snapshot=Snapshot(b"abc")), 66 + 24, ">Q", 2**40),
            "snapshot claims 0 member ids and 1099511627776 data bytes",
        ),
    ],
)
def test_specific_corruptions_say_what_is_wrong(raw: bytes, match: str) -> None:
    with pytest.raises(CodecError, match=match):
        decode_message(raw)


@pytest.mark.parametrize(
    "msg",
    [
        Message(MessageType.APP, to=2**64),
        Message(MessageType.APP, term=-1),
        Message(MessageType.APP, entries=(Entry(term=2**64, index=1),)),
    ],
)
def test_values_out_of_range_raise_codec_error(msg: Message) -> None:
    with pytest.raises(CodecError, match="cannot encode"):
        encode_message(msg)


def test_heartbeat_is_compact() -> None:
    assert len(encode_message(HEARTBEAT)) == 66
