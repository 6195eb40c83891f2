"""The small pieces: Wait, the ReadIndex batcher, the envelope, the error table."""

from __future__ import annotations

import asyncio

import pytest

from kvorum.raft import ConfChange, ConfChangeType, Entry, EntryType, ReadState
from kvorum.server import (
    ReadIndexBatcher,
    RequestIdGenerator,
    Wait,
    decode_conf_change,
    decode_envelope,
    encode_envelope,
    errors,
)
from kvorum.server.envelope import encode_conf_change


def test_wait_wakes_by_request_id_and_is_bounded() -> None:
    async def main() -> None:
        wait = Wait(max_waiters=2)
        first = wait.register(1)
        second = wait.register(2)
        with pytest.raises(errors.TooManyRequestsError) as full:
            wait.register(3)
        assert str(full.value) == "etcdserver: too many requests"
        with pytest.raises(ValueError):
            wait.register(1)
        assert wait.trigger(2, "two")
        assert not wait.trigger(2, "again")  # a second trigger finds nobody
        assert not wait.trigger(99, "unknown")  # another member's request
        assert await second == "two"
        wait.cancel(1)
        assert first.cancelled() and len(wait) == 0
        third = wait.register(3)
        wait.fail_all(errors.StoppedError())
        with pytest.raises(errors.StoppedError):
            await third

    asyncio.run(main())


def test_read_batcher_one_round_for_all_waiting_reads_released_when_applied() -> None:
    async def main() -> None:
        reads = ReadIndexBatcher(first_ctx=7, retry_s=0.5)
        a, b = reads.add(), reads.add()
        ctx = reads.start_round(now_s=0.0)
        assert ctx is not None
        assert reads.start_round(now_s=0.0) is None  # nobody new: no round
        c = reads.add()
        ctx2 = reads.start_round(now_s=0.1)
        assert ctx2 is not None and ctx2 != ctx
        # Answered at index 10 while only 8 is applied: the reads wait for apply.
        reads.on_read_state(ReadState(10, ctx), applied_index=8)
        assert not a.done() and not b.done()
        reads.on_read_state(ReadState(10, ctx), applied_index=8)  # a duplicate: ignored
        reads.on_applied(10)
        assert a.result() == 10 and b.result() == 10
        # The second round is unanswered: retried after retry_s with the same context.
        assert reads.due_retries(now_s=0.3) == []
        assert reads.due_retries(now_s=0.7) == [ctx2]
        reads.on_read_state(ReadState(12, ctx2), applied_index=12)
        assert c.result() == 12
        assert len(reads) == 0

    asyncio.run(main())


def test_read_batcher_drops_abandoned_rounds_and_is_bounded() -> None:
    async def main() -> None:
        reads = ReadIndexBatcher(max_waiting=1)
        first = reads.add()
        with pytest.raises(errors.TooManyRequestsError):
            reads.add()
        assert reads.start_round(now_s=0.0) is not None
        first.cancel()  # the caller timed out
        assert reads.due_retries(now_s=10.0) == []
        assert len(reads) == 0
        reads.add()

    asyncio.run(main())


def test_envelope_round_trip_and_the_leaders_noop() -> None:
    ids = RequestIdGenerator(member_id=0x8E9E05C52164694D, now_ms=1_700_000_000_000)
    first, second = ids.next(), ids.next()
    assert second == first + 1
    assert first >> 48 == 0x694D
    entry = Entry(3, 9, data=encode_envelope(first, b"payload"))
    envelope = decode_envelope(entry)
    assert envelope is not None
    assert (envelope.request_id, envelope.payload) == (first, b"payload")
    assert decode_envelope(Entry(3, 10)) is None
    with pytest.raises(ValueError, match="too short"):
        decode_envelope(Entry(3, 11, data=b"abc"))
    cc = ConfChange(ConfChangeType.ADD_NODE, 0x42, b"member json")
    wrapped = encode_conf_change(second, cc)
    conf_entry = Entry(3, 12, EntryType.CONF_CHANGE, wrapped.encode())
    assert decode_envelope(conf_entry) is None
    assert decode_conf_change(conf_entry) == (second, cc)


@pytest.mark.parametrize(
    ("error", "code", "text"),
    [
        (errors.NoLeaderError, "UNAVAILABLE", "etcdserver: no leader"),
        (errors.RequestTimeoutError, "UNAVAILABLE", "etcdserver: request timed out"),
        (
            errors.TimeoutDueToLeaderFailError,
            "UNAVAILABLE",
            "etcdserver: request timed out, possibly due to previous leader failure",
        ),
        (
            errors.TimeoutLeaderTransferError,
            "UNAVAILABLE",
            "etcdserver: request timed out, leader transfer took too long",
        ),
        (errors.StoppedError, "UNAVAILABLE", "etcdserver: server stopped"),
        (errors.TooManyRequestsError, "RESOURCE_EXHAUSTED", "etcdserver: too many requests"),
        (errors.NotLeaderError, "FAILED_PRECONDITION", "etcdserver: not leader"),
        (errors.ProposalDroppedError, "UNKNOWN", "raft proposal dropped"),
    ],
)
def test_error_table_carries_etcds_code_and_text(
    error: type[errors.ServerError], code: str, text: str
) -> None:
    exc = error("a detail for our logs only")
    assert str(exc) == text
    assert exc.grpc_code == code
    assert exc.detail == "a detail for our logs only"
    assert isinstance(exc, errors.ServerError)
