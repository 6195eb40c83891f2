"""PeerTransport over real sockets on 127.0.0.1 (free ports, asyncio debug mode).

Every test runs in its own event loop with debug on, fails on any error the loop reports
(a task exception never retrieved, a callback that raised) and on any task still alive
once every transport is stopped.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import random
import statistics
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest
import uvloop

from kvorum.raft.types import (
    ConfState,
    Entry,
    Message,
    MessageType,
    Snapshot,
    SnapshotMetadata,
)
from kvorum.transport import (
    ClusterInfoError,
    PeerTransport,
    TransportLimits,
    fetch_cluster_info,
)
from kvorum.transport.codec import encode_message
from kvorum.transport.wire import (
    FrameKind,
    Hello,
    HelloReply,
    HelloStatus,
    StreamKind,
    frame_header,
)

pytestmark = [
    pytest.mark.timeout(200 if os.environ.get("KVORUM_LONG") == "1" else 60),
    pytest.mark.filterwarnings("error::RuntimeWarning"),
    pytest.mark.filterwarnings("error::ResourceWarning"),
    pytest.mark.filterwarnings("error::pytest.PytestUnraisableExceptionWarning"),
]

LONG = os.environ.get("KVORUM_LONG") == "1"
CLUSTER = 0xC1C1
MiB = 1024 * 1024
FAST = TransportLimits(backoff_min_s=0.02, backoff_max_s=0.2, handshake_timeout_s=1.0)
LOGGER = "kvorum.transport.test"


def run(main: Callable[[], Awaitable[None]], timeout_s: float = 20.0, uv: bool = False) -> None:
    """Run ``main`` in a fresh debug-mode loop; fail on loop errors or leftover tasks."""
    errors: list[dict[str, Any]] = []

    async def wrapper() -> None:
        asyncio.get_running_loop().set_exception_handler(lambda _loop, ctx: errors.append(ctx))
        async with asyncio.timeout(timeout_s):
            await main()
        await asyncio.sleep(0.01)  # let closing transports finish their callbacks
        leftover = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
        assert not leftover, f"tasks still running after stop(): {leftover}"

    with asyncio.Runner(debug=True, loop_factory=uvloop.new_event_loop if uv else None) as runner:
        runner.run(wrapper())
    assert not errors, errors


class Node:
    """One transport plus everything its callbacks reported."""

    def __init__(
        self,
        member_id: int,
        *,
        cluster_id: int = CLUSTER,
        port: int = 0,
        limits: TransportLimits = FAST,
    ) -> None:
        self.id = member_id
        self.received: list[Message] = []
        self.arrival_s: list[float] = []
        self.unreachable: list[int] = []
        self.snapshots: list[tuple[int, bool]] = []
        self.transport = PeerTransport(
            member_id,
            cluster_id,
            [f"http://127.0.0.1:{port}"],
            self._on_message,
            self.unreachable.append,
            lambda peer, ok: self.snapshots.append((peer, ok)),
            limits=limits,
            rng=random.Random(member_id),
            logger=logging.getLogger(f"{LOGGER}.{member_id:x}"),
        )

    def _on_message(self, msg: Message) -> None:
        self.received.append(msg)
        self.arrival_s.append(time.perf_counter())

    @property
    def url(self) -> str:
        return self.transport.bound_urls[0]

    @property
    def port(self) -> int:
        return int(self.url.rsplit(":", 1)[1])

    def from_(self, sender: int, kind: MessageType | None = None) -> list[Message]:
        return [m for m in self.received if m.frm == sender and (kind is None or m.type == kind)]


@contextlib.asynccontextmanager
async def cluster(*nodes: Node) -> AsyncIterator[tuple[Node, ...]]:
    """Start ``nodes``, make each a peer of every other, stop them all at the end."""
    try:
        for node in nodes:
            await node.transport.start()
        for node in nodes:
            for other in nodes:
                if other is not node:
                    node.transport.add_peer(other.id, [other.url])
        yield nodes
    finally:
        for node in nodes:
            await node.transport.stop()


async def wait_until(what: str, predicate: Callable[[], bool], timeout_s: float = 5.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting until {what}")
        await asyncio.sleep(0.005)


def heartbeat(frm: int, to: int, seq: int) -> Message:
    return Message(MessageType.HEARTBEAT, to=to, frm=frm, term=1, index=seq)


def append(frm: int, to: int, seq: int, payload: bytes = b"x" * 100) -> Message:
    return Message(
        MessageType.APP, to=to, frm=frm, term=1, index=seq, entries=(Entry(1, seq, data=payload),)
    )


# --- ordered exchange ------------------------------------------------------------------


async def _exchange(small_per_pair: int, bulk_per_pair: int, rounds: int = 50) -> None:
    """Each member sends to each other one, spread over ``rounds`` loop iterations.

    Per round the amounts stay well inside the queue bounds, as raft's in-flight window
    keeps them: this checks delivery and order, not overflow.
    """
    a, b, c = Node(1), Node(2), Node(3)
    async with cluster(a, b, c):
        nodes = (a, b, c)
        for r in range(rounds):
            for node in nodes:
                batch: list[Message] = []
                for other in nodes:
                    if other is node:
                        continue
                    lo, hi = small_per_pair * r // rounds, small_per_pair * (r + 1) // rounds
                    batch += [heartbeat(node.id, other.id, i) for i in range(lo, hi)]
                    lo, hi = bulk_per_pair * r // rounds, bulk_per_pair * (r + 1) // rounds
                    batch += [append(node.id, other.id, i) for i in range(lo, hi)]
                node.transport.send(batch)
            await asyncio.sleep(0)
        per_node = 2 * (small_per_pair + bulk_per_pair)
        await wait_until(
            "every message arrived",
            lambda: all(len(n.received) == per_node for n in nodes),
            120 if LONG else 15,
        )
        assert all(n.unreachable == [] for n in nodes)
        for node in nodes:
            for other in nodes:
                if other is node:
                    continue
                # In order per connection: heartbeats (small) and appends (bulk) each in order.
                heartbeats = [m.index for m in node.from_(other.id, MessageType.HEARTBEAT)]
                appends = [m.index for m in node.from_(other.id, MessageType.APP)]
                assert heartbeats == list(range(small_per_pair))
                assert appends == list(range(bulk_per_pair))
                assert all(
                    m.entries[0].index == m.index for m in node.from_(other.id, MessageType.APP)
                )
                stats = other.transport.peer_stats(node.id)
                assert stats is not None and stats.messages_sent == per_node // 2
                # Batching: one write per connection per loop iteration, not one per message.
                assert stats.writes <= 2 * rounds + 10
            assert node.unreachable == []


def test_three_members_exchange_thousands_of_messages_in_order() -> None:
    scale = 10 if LONG else 1
    run(lambda: _exchange(3000 * scale, 1000 * scale, 50 * scale), timeout_s=150 if LONG else 20)


def test_exchange_under_uvloop() -> None:
    run(lambda: _exchange(1000, 300), uv=True)


# --- restart, refusal ------------------------------------------------------------------


def test_stopped_member_is_reported_unreachable_and_reconnected_after_restart(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger=LOGGER)

    async def main() -> None:
        a, b, c = Node(1), Node(2), Node(3)
        async with cluster(a, b, c):
            seq = 0

            async def beat() -> None:
                nonlocal seq
                while True:
                    seq += 1
                    for node in (a, b):
                        node.transport.send(
                            [heartbeat(node.id, o.id, seq) for o in (a, b, c) if o is not node]
                        )
                    await asyncio.sleep(0.01)

            beater = asyncio.create_task(beat())
            try:
                await wait_until("c hears from both", lambda: bool(c.from_(1) and c.from_(2)))
                await c.transport.stop()
                await wait_until(
                    "a and b report c", lambda: 3 in a.unreachable and 3 in b.unreachable
                )
                assert 2 not in a.unreachable and 1 not in b.unreachable
                stats = a.transport.peer_stats(3)
                assert stats is not None and stats.active is False
                # Down long enough for several redials (back-off tops out at 0.2 s here);
                # every heartbeat meanwhile is dropped and reported.
                reported_before = a.unreachable.count(3)
                await asyncio.sleep(0.6)
                assert a.unreachable.count(3) >= reported_before + 10
                # Restarted on the same port: a and b find it again by themselves.
                c2 = Node(3, port=c.port)
                await c2.transport.start()
                try:
                    await wait_until(
                        "restarted c hears from both", lambda: bool(c2.from_(1) and c2.from_(2))
                    )
                    stats = a.transport.peer_stats(3)
                    assert stats is not None and stats.active is True
                    # Messages a sends now are ordered after the restart.
                    recent = [m.index for m in c2.from_(1)]
                    assert recent == sorted(recent)
                    a_lines = [r.getMessage() for r in caplog.records if r.name == f"{LOGGER}.1"]
                    # Transitions are logged once each, not once per redial.
                    assert sum("peer 3 became inactive" in line for line in a_lines) == 1
                    assert sum("peer 3 became active" in line for line in a_lines) == 2
                finally:
                    await c2.transport.stop()
            finally:
                beater.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await beater

    run(main)


def test_cluster_id_or_member_id_mismatch_is_refused_and_logged(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger=LOGGER)

    async def main() -> None:
        a, b = Node(0xA1), Node(0xB2)
        stale = Node(0xD4, cluster_id=0xBAD)
        async with cluster(a, b), cluster(stale):
            a.transport.add_peer(0xD4, [stale.url])
            a.transport.add_peer(0xE5, [b.url])  # a believes member e5 lives at b's URL
            a.transport.send([heartbeat(0xA1, 0xD4, 1), heartbeat(0xA1, 0xE5, 1)])
            await wait_until("both refusals reported", lambda: {0xD4, 0xE5} <= set(a.unreachable))
            await asyncio.sleep(0.05)
            assert stale.received == [] and b.received == []

    run(main)
    lines = [r.getMessage() for r in caplog.records]
    # Both sides name both cluster ids, so the operator sees which data dir is stale.
    assert any("peer d4" in x and "cluster bad" in x and "cluster c1c1" in x for x in lines)
    assert any("member a1" in x and "cluster c1c1" in x and "cluster bad" in x for x in lines)
    assert any("is member b2, not peer e5" in x for x in lines)
    assert any("it wants member e5 but this is member b2" in x for x in lines)


# --- priorities, snapshots, overflow -----------------------------------------------------


def test_heartbeat_is_not_delayed_by_big_appends_in_flight() -> None:
    big = random.Random(5).randbytes(10 * MiB)
    latencies_s: list[float] = []

    async def main() -> None:
        a, b = Node(1), Node(2)
        async with cluster(a, b):
            # Open both connections first: the measurement is of queueing, not of dialing.
            a.transport.send([heartbeat(1, 2, 0), append(1, 2, 0)])
            await wait_until("warm-up arrived", lambda: len(b.received) == 2)
            for trial in range(3):
                b.received.clear()
                b.arrival_s.clear()
                a.transport.send([append(1, 2, 10 * trial + i, big) for i in range(1, 4)])
                sent_s = time.perf_counter()
                a.transport.send([heartbeat(1, 2, trial + 1)])
                await wait_until("all arrived", lambda: len(b.received) == 4, 10)
                kinds = [m.type for m in b.received]
                hb = kinds.index(MessageType.HEARTBEAT)
                # It overtook the 30 MiB queued before it on the other connection.
                assert hb < 3, kinds
                assert all(len(m.entries[0].data) == len(big) for m in b.received if m.entries)
                latencies_s.append(b.arrival_s[hb] - sent_s)

    run(main)
    print(f"heartbeat latency with 30 MiB of appends ahead: {latencies_s}")
    assert statistics.median(latencies_s) < 0.1, latencies_s


def _snapshot_message(frm: int, to: int, data: bytes) -> Message:
    meta = SnapshotMetadata(ConfState(voters=(1, 2, 3), learners=(9,)), index=1234, term=7)
    return Message(MessageType.SNAP, to=to, frm=frm, term=7, snapshot=Snapshot(data, meta))


def test_snapshot_of_several_mib_arrives_whole_and_is_confirmed() -> None:
    data = random.Random(9).randbytes(6 * MiB + 12345)

    async def main() -> None:
        a, b = Node(1), Node(2)
        async with cluster(a, b):
            snap = _snapshot_message(1, 2, data)
            a.transport.send([snap, heartbeat(1, 2, 1)])
            await wait_until("snapshot confirmed", lambda: a.snapshots == [(2, True)], 10)
            received = b.from_(1, MessageType.SNAP)
            assert received == [snap]
            assert received[0].snapshot is not None and received[0].snapshot.data == data
            # An empty snapshot payload is a valid transfer too.
            a.transport.send([_snapshot_message(1, 2, b"")])
            await wait_until("empty snapshot", lambda: a.snapshots == [(2, True), (2, True)])

    run(main)


def test_snapshot_failures_are_reported() -> None:
    async def main() -> None:
        a = Node(1)
        small = Node(2, limits=TransportLimits(max_snapshot_bytes=MiB, backoff_max_s=0.1))
        async with cluster(a, small):
            a.transport.send([_snapshot_message(1, 2, b"z" * (2 * MiB))])
            await wait_until("refusal reported", lambda: a.snapshots == [(2, False)])
            assert small.from_(1, MessageType.SNAP) == []
            # The receiver closed the bulk connection; raft's retry finds it redialed.
            for _ in range(100):
                a.transport.send([_snapshot_message(1, 2, b"z" * 1000)])
                await asyncio.sleep(0.02)
                if (2, True) in a.snapshots:
                    break
            assert a.snapshots[0] == (2, False) and a.snapshots[-1] == (2, True)
            assert [m.snapshot for m in small.from_(1, MessageType.SNAP)] == [
                _snapshot_message(1, 2, b"z" * 1000).snapshot
            ]
            # A snapshot to a member that is gone fails instead of hanging.
            await small.transport.stop()
            await wait_until("2 reported unreachable", lambda: 2 in a.unreachable)
            # (Sent again until the sender has noticed: raft would keep retrying too.)
            for _ in range(100):
                a.transport.send([_snapshot_message(1, 2, b"q")])
                await asyncio.sleep(0.02)
                if a.snapshots[-1] == (2, False):
                    break
            assert a.snapshots[-1] == (2, False)

    run(main)


def test_snapshot_that_raft_refuses_is_reported_failed() -> None:
    class Refusing(Node):
        def _on_message(self, msg: Message) -> None:
            if msg.type == MessageType.SNAP:
                raise RuntimeError("raft is closed")
            super()._on_message(msg)

    async def main() -> None:
        a, b = Node(1), Refusing(2)
        async with cluster(a, b):
            a.transport.send([_snapshot_message(1, 2, b"s" * 5000), append(1, 2, 1)])
            await wait_until("refusal reported", lambda: a.snapshots == [(2, False)])
            await wait_until("the connection stays usable", lambda: len(b.received) == 1)

    run(main)


def test_queue_overflow_drops_and_reports_unreachable() -> None:
    async def main() -> None:
        a = Node(1, limits=TransportLimits(small_queue_max_messages=100))
        b = Node(2)
        async with cluster(a, b):
            a.transport.send([heartbeat(1, 2, i) for i in range(1000)])
            assert a.unreachable == []  # never reported from inside send() ...
            await asyncio.sleep(0)
            assert a.unreachable == [2]  # ... but right after, once per call, not per message
            await wait_until("the queued ones arrived", lambda: len(b.received) == 100)
            assert [m.index for m in b.received] == list(range(100))
            stats = a.transport.peer_stats(2)
            assert stats is not None and stats.messages_dropped == 900
            await asyncio.sleep(0.05)
            assert len(b.received) == 100
            a.transport.send([heartbeat(1, 2, 1000)])
            await wait_until("later sends go through", lambda: len(b.received) == 101)

    run(main)


def test_peer_that_stops_reading_overflows_the_queue() -> None:
    """A connected but stalled peer (e.g. SIGSTOPped): the bounded queue fills and drops."""

    async def main() -> None:
        accepted: list[asyncio.StreamWriter] = []

        async def stalled(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            hello, _ = Hello.decode(await reader.readexactly(Hello.SIZE))
            writer.write(HelloReply(HelloStatus.OK, hello.cluster_id, hello.receiver_id).encode())
            accepted.append(writer)  # and never read again

        server = await asyncio.start_server(stalled, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        limits = TransportLimits(bulk_queue_max_bytes=MiB, write_timeout_s=0.5)
        a = Node(1, limits=limits)
        try:
            async with cluster(a):
                a.transport.add_peer(2, [f"http://127.0.0.1:{port}"])
                payload = b"p" * (256 * 1024)
                seq = 0
                while not a.unreachable:
                    seq += 1
                    a.transport.send([append(1, 2, seq, payload)])
                    await asyncio.sleep(0.001)
                    assert seq < 2000, "the queue never filled"
                stats = a.transport.peer_stats(2)
                assert stats is not None and stats.messages_dropped >= 1
                assert stats.queued_messages <= 4  # 1 MiB of 256 KiB messages

                # Writes that cannot drain within write_timeout_s end the bulk connection, and
                # its queue with it. (The peer stays "active": its idle small-message stream,
                # dialled when it was added, is still up, as etcd counts a peer with one live
                # stream.)
                def given_up() -> bool:
                    now = a.transport.peer_stats(2)
                    return now is not None and now.queued_messages == 0

                await wait_until("the stalled connection is given up", given_up)
        finally:
            for writer in accepted:
                writer.close()
            server.close()
            await server.wait_closed()

    run(main)


# --- membership and cluster info ---------------------------------------------------------


def test_unknown_senders_are_delivered_and_peers_can_change() -> None:
    async def main() -> None:
        a, b = Node(1), Node(2)
        async with cluster(a), cluster(b):
            a.transport.add_peer(2, [b.url])  # b does not know a yet (a just joined)
            a.transport.send([heartbeat(1, 2, 1)])
            await wait_until("b got a's message", lambda: len(b.received) == 1)
            b.transport.send([Message(MessageType.HEARTBEAT_RESP, to=1, frm=2)])  # no URL: dropped
            assert b.unreachable == []
            b.transport.add_peer(1, [a.url])  # the conf change is applied
            b.transport.send([Message(MessageType.HEARTBEAT_RESP, to=1, frm=2)])
            await wait_until("a got b's answer", lambda: len(a.received) == 1)

            # b moves to another port: update_peer redirects a's connections.
            b2 = Node(2)
            async with cluster(b2):
                a.transport.update_peer(2, [b2.url])
                a.transport.send([heartbeat(1, 2, 2), append(1, 2, 2)])
                await wait_until("the moved b got both", lambda: len(b2.received) == 2)
                a.transport.remove_peer(2)
                assert a.transport.peer_ids() == ()
                a.transport.send([heartbeat(1, 2, 3)])  # unknown now: dropped, not reported
                await asyncio.sleep(0.05)
                assert len(b2.received) == 2 and 2 not in a.unreachable

    run(main)


def test_cluster_info_is_served_to_a_joining_member() -> None:
    async def main() -> None:
        a = Node(1)
        other = Node(7, cluster_id=0xBAD)
        async with cluster(a), cluster(other):
            with pytest.raises(ClusterInfoError, match="no cluster info"):
                await fetch_cluster_info(a.url)
            a.transport.set_cluster_info_provider(lambda: b'{"members": [1, 2, 3]}')
            # A joining member knows neither the cluster id nor its own place yet.
            assert await fetch_cluster_info(a.url, timeout_s=2) == b'{"members": [1, 2, 3]}'
            assert await a.transport.fetch_cluster_info(a.url) == b'{"members": [1, 2, 3]}'
            # A member of another cluster asking with its own cluster id is refused.
            with pytest.raises(ClusterInfoError, match="refused the request: CLUSTER_MISMATCH"):
                await other.transport.fetch_cluster_info(a.url)
            await a.transport.stop()
            with pytest.raises(ClusterInfoError, match="failed"):
                await fetch_cluster_info(a.url, timeout_s=2)

    run(main)


def test_garbage_on_the_peer_port_is_refused_without_harm() -> None:
    async def main() -> None:
        a, b = Node(1), Node(2)
        async with cluster(a, b):
            for junk in (b"GET /members HTTP/1.1\r\nHost: x\r\n\r\n", b"\x00" * 200):
                reader, writer = await asyncio.open_connection("127.0.0.1", a.port)
                writer.write(junk)
                assert await _read_until_closed(reader) == b""
                writer.close()
                await writer.wait_closed()
            # A well-formed handshake followed by a corrupt frame closes just that connection.
            reader, writer = await asyncio.open_connection("127.0.0.1", a.port)
            writer.write(Hello(StreamKind.SMALL, CLUSTER, 2, 1).encode())
            await reader.readexactly(HelloReply.SIZE)
            writer.write(b"\x01\x00\x00\x00\x03abc")
            assert await _read_until_closed(reader) == b""
            writer.close()
            await writer.wait_closed()

            # The handshake above, made in member 2's name, replaced member 2's own connection
            # (dialled when it added member 1): its stream reconnects after a back-off, during
            # which sends are dropped, as after any broken connection.
            async def delivered() -> bool:
                b.transport.send([heartbeat(2, 1, 1)])
                await asyncio.sleep(0.05)
                return bool(a.received)

            deadline = asyncio.get_running_loop().time() + 10.0
            while not await delivered():
                assert asyncio.get_running_loop().time() < deadline, "real traffic stopped"

    run(main)


def _inactive(node: Node, peer_id: int) -> bool:
    stats = node.transport.peer_stats(peer_id)
    return stats is not None and stats.active is False


async def _read_until_closed(reader: asyncio.StreamReader) -> bytes:
    """What the other side sent before closing (a reset counts as closing)."""
    try:
        return await reader.read()
    except ConnectionResetError:
        return b""


def test_a_new_connection_from_the_same_member_replaces_the_old_one() -> None:
    """A peer that restarted without closing its sockets leaves nothing half-open here."""

    async def main() -> None:
        a = Node(1)
        async with cluster(a):
            old_reader, old_writer = await _handshake(a.port, sender=2)
            _, new_writer = await _handshake(a.port, sender=2)
            assert await _read_until_closed(old_reader) == b""
            # The new one works: a message on it is delivered.
            payload = encode_message(heartbeat(2, 1, 7))
            new_writer.write(frame_header(FrameKind.MESSAGE, len(payload)) + payload)
            await wait_until("delivered", lambda: [m.index for m in a.received] == [7])
            for writer in (old_writer, new_writer):
                writer.close()
                await writer.wait_closed()

    run(main)


async def _handshake(port: int, sender: int) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(Hello(StreamKind.SMALL, CLUSTER, sender, 1).encode())
    reply = HelloReply.decode(await reader.readexactly(HelloReply.SIZE))
    assert reply.status is HelloStatus.OK
    return reader, writer
