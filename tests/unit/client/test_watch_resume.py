"""The watch's resume invariant, fed with responses by hand: every revision from the start is
delivered once, in order, whatever a reconnect replays."""

from __future__ import annotations

import pytest

from kvorum.api.pb.etcdserverpb import rpc_pb2
from kvorum.api.pb.mvccpb import kv_pb2
from kvorum.client import CompactedError, EventType
from kvorum.client.transport import ClientConfig, Pool
from kvorum.client.watch import Watch


def _watch(start_revision: int = 0) -> Watch:
    pool = Pool(ClientConfig(endpoints=("127.0.0.1:1",)))
    return Watch(pool, rpc_pb2.WatchCreateRequest(key=b"k", start_revision=start_revision))


def _events(
    *revisions: int, kind: kv_pb2.Event.EventType = kv_pb2.Event.PUT
) -> rpc_pb2.WatchResponse:
    return rpc_pb2.WatchResponse(
        events=[
            kv_pb2.Event(type=kind, kv=kv_pb2.KeyValue(key=b"k", mod_revision=r)) for r in revisions
        ]
    )


def _drain(w: Watch) -> list[int]:
    out = [e.revision for e in w._buffer]
    w._buffer.clear()
    return out


def test_created_without_start_resumes_after_the_creation_revision() -> None:
    w = _watch()
    created = rpc_pb2.WatchResponse(created=True, header=rpc_pb2.ResponseHeader(revision=41))
    w._accept(created)
    assert w.next_revision == 42
    w._accept(_events(42, 43))
    assert (_drain(w), w.next_revision) == ([42, 43], 44)


def test_replayed_events_after_a_reconnect_are_dropped_once_seen() -> None:
    w = _watch(start_revision=5)
    w._accept(_events(5, 6))
    # A new stream from next_revision; a server replaying older revisions must not repeat them.
    w._accept(rpc_pb2.WatchResponse(created=True, header=rpc_pb2.ResponseHeader(revision=9)))
    w._accept(_events(6, 7, 8))
    assert _drain(w) == [5, 6, 7, 8]
    assert w.next_revision == 9


def test_all_events_of_one_revision_are_kept() -> None:
    w = _watch(start_revision=3)
    w._accept(_events(3, 3, 4))  # a txn that changed two keys at revision 3
    assert _drain(w) == [3, 3, 4]


def test_delete_events_keep_their_type() -> None:
    w = _watch(start_revision=1)
    w._accept(_events(2, kind=kv_pb2.Event.DELETE))
    assert w._buffer[0].type is EventType.DELETE


def test_compacted_start_raises_with_the_compact_revision() -> None:
    w = _watch(start_revision=2)
    with pytest.raises(CompactedError) as exc:
        w._accept(rpc_pb2.WatchResponse(canceled=True, compact_revision=7))
    assert exc.value.compact_revision == 7
    assert w._closed
