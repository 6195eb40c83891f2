"""A watcher that reads nothing for a while holds up no writer, and then gets every event.

Concurrent writers put 32 MiB into one kvorum member while the only watcher's stream is not
read at all -- more than gRPC's flow-control windows and the hub's 16 MiB stream buffer, so the
watcher falls behind and must be caught up from history. Every write must be acknowledged while
the watcher still reads nothing (a generous bound, not a timing figure: bench/watch_lease.py
measures the cost); once the watcher reads, every event arrives, once, in revision order.
"""

from __future__ import annotations

import queue
import threading
import time
from pathlib import Path
from typing import Any

import grpc
import pytest

from kvorum.api.pb.etcdserverpb import rpc_pb2, rpc_pb2_grpc
from tests.e2e.member.helpers import kvorum_cluster

pytestmark = pytest.mark.timeout(180)

WRITERS, PUTS_EACH = 4, 256
VALUE = b"s" * (32 << 10)  # 4 x 256 x 32 KiB = 32 MiB of events
#: The watcher reads nothing for at least this long, and until every write is acknowledged.
STALL_S = 5.0
#: Generous for a loaded 2-core machine: the writes take ~3 s on an idle one.
WRITES_WITHIN_S = 90.0
DRAIN_WITHIN_S = 60.0
DRAIN_FULL_BUFFER_WITHIN_S = 6.0
RPC_TIMEOUT_S = 10.0
#: A watcher catching up from history gets many revisions in one response: up to its 16 MiB
#: buffer from kvorum, any size from etcd 3.4 (25 MB seen here). etcd's Go client accepts any
#: size (MaxCallRecvMsgSize defaults to MaxInt32); grpc's Python default of 4 MiB would end
#: the stream with RESOURCE_EXHAUSTED on either server.
WATCH_CHANNEL_OPTIONS = [("grpc.max_receive_message_length", -1)]


def test_a_watcher_that_stalls_blocks_no_writer_and_then_gets_every_event(
    tmp_path: Path,
) -> None:
    with kvorum_cluster(1, tmp_path) as c:
        address = c.member(0).spec.client_address
        kv: Any = c.member(0).kv_stub()
        start = kv.Range(rpc_pb2.RangeRequest(key=b"s/")).header.revision + 1
        channel = grpc.insecure_channel(address, options=WATCH_CHANNEL_OPTIONS)
        requests: queue.Queue[rpc_pb2.WatchRequest | None] = queue.Queue()
        stub: Any = rpc_pb2_grpc.WatchStub(channel)  # type: ignore[no-untyped-call]
        stream = stub.Watch(iter(requests.get, None))
        try:
            create = rpc_pb2.WatchCreateRequest(key=b"s/", range_end=b"s0", start_revision=start)
            requests.put(rpc_pb2.WatchRequest(create_request=create))
            assert next(stream).created
            stalled_at = time.monotonic()

            acked: list[int] = []
            lock = threading.Lock()

            def write(n: int) -> None:
                for i in range(PUTS_EACH):
                    put = rpc_pb2.PutRequest(key=f"s/{n}/{i % 8}".encode(), value=VALUE)
                    revision = kv.Put(put, timeout=RPC_TIMEOUT_S).header.revision
                    with lock:
                        acked.append(revision)

            writers = [threading.Thread(target=write, args=(n,)) for n in range(WRITERS)]
            for t in writers:
                t.start()
            for t in writers:
                t.join(max(stalled_at + WRITES_WITHIN_S - time.monotonic(), 0.1))
            # Not one response has been read since `created`: writes went on regardless.
            assert not any(t.is_alive() for t in writers), "writes held up by a stalled watcher"
            assert len(acked) == WRITERS * PUTS_EACH
            time.sleep(max(stalled_at + STALL_S - time.monotonic(), 0))

            seen: list[int] = []
            drained = threading.Event()

            def drain() -> None:
                for response in stream:
                    assert not response.canceled, response
                    seen.extend(e.kv.mod_revision for e in response.events)
                    if len(seen) >= len(acked):
                        drained.set()
                        return

            threading.Thread(target=drain, daemon=True).start()
            assert drained.wait(DRAIN_WITHIN_S), f"{len(seen)} of {len(acked)} events arrived"
        finally:
            stream.cancel()
            requests.put(None)
            channel.close()
    assert seen == sorted(acked), "an event lost, repeated or out of order"
    assert seen == list(range(start, start + len(acked)))


def test_a_synced_watcher_with_a_full_buffer_drains_without_waiting_for_new_writes(
    tmp_path: Path,
) -> None:
    """Regression: the sender takes at most 128 queued responses at a time; when more were
    queued it waited for the next write or the 1 s progress tick before the next 128, so a
    watcher that fell behind by less than its 16 MiB buffer (still synced) drained at about
    128 responses a second once the writes stopped. 2,500 responses of 4 KiB stay within the
    buffer; with the bug they took ~15 s to arrive, now well under a second on an idle box."""
    count, value = 2_500, b"d" * (4 << 10)
    with kvorum_cluster(1, tmp_path) as c:
        kv: Any = c.member(0).kv_stub()
        channel = grpc.insecure_channel(
            c.member(0).spec.client_address, options=WATCH_CHANNEL_OPTIONS
        )
        requests: queue.Queue[rpc_pb2.WatchRequest | None] = queue.Queue()
        stub: Any = rpc_pb2_grpc.WatchStub(channel)  # type: ignore[no-untyped-call]
        stream = stub.Watch(iter(requests.get, None))
        try:
            create = rpc_pb2.WatchCreateRequest(key=b"d/", range_end=b"d0")
            requests.put(rpc_pb2.WatchRequest(create_request=create))
            assert next(stream).created
            revisions: list[int] = []

            def write(n: int) -> None:
                for i in range(count // WRITERS):
                    put = rpc_pb2.PutRequest(key=b"d/%d/%d" % (n, i % 8), value=value)
                    revisions.append(kv.Put(put, timeout=RPC_TIMEOUT_S).header.revision)

            writers = [threading.Thread(target=write, args=(n,)) for n in range(WRITERS)]
            for t in writers:
                t.start()
            for t in writers:
                t.join(WRITES_WITHIN_S)
            assert len(revisions) == count
            seen: list[int] = []
            drained = threading.Event()

            def drain() -> None:
                for response in stream:
                    seen.extend(e.kv.mod_revision for e in response.events)
                    if len(seen) >= count:
                        drained.set()
                        return

            threading.Thread(target=drain, daemon=True).start()
            # Generous for a loaded machine; the bug needed ~15 s (one 128-response take per
            # progress tick), a healthy sender a fraction of a second.
            assert drained.wait(DRAIN_FULL_BUFFER_WITHIN_S), f"{len(seen)} of {count} arrived"
        finally:
            stream.cancel()
            requests.put(None)
            channel.close()
    assert seen == sorted(revisions)
