"""Reproduction of a bug the fault suite found: a peer stream died for good on a connection reset.

Seen in a kill-leader run (seed 3, kvorum, 3 members): after the old leader was killed and
restarted, the new leader logged "send queue to peer ... is full (small connection): dropping
messages" every 10 s for two minutes and the restarted member never caught up; at shutdown the
loop printed the stream task's exception, ``RuntimeError: unable to perform operation on
<TCPTransport closed=True ...>; the handler is closed`` from ``writer.write`` in
``_Stream._pump``.

Why: under uvloop a transport that hits a send error (the peer reset the connection) closes
itself at once, while our reply reader only learns of it on its next turn. If the pump wakes
first with messages queued, it writes to the closed transport, and uvloop raises RuntimeError
-- not OSError, which was all the pump expected. The stream task died, its state stayed
CONNECTED, so no later send ever started a new one: the peer was cut off until the member
restarted.

This test makes the same order of events happen on purpose: the connection's transport is
aborted and, in the same turn of the loop, a message is queued, so the pump runs before the
reader. The stream must notice, redial, and deliver later messages.
"""

from __future__ import annotations

import asyncio

from tests.unit.transport.test_transport import Node, cluster, heartbeat, run, wait_until


def test_stream_survives_a_transport_closed_under_it_before_the_reader_notices() -> None:
    async def main() -> None:
        a, b = Node(1), Node(2)
        async with cluster(a, b):
            a.transport.send([heartbeat(1, 2, 1)])
            await wait_until("b hears a", lambda: bool(b.from_(1)))
            stream = a.transport._peers[2]._small
            conn = stream._conn
            assert conn is not None
            # What uvloop does on a send error: the transport is closed right away ...
            conn.writer.transport.abort()
            # ... and the pump is woken with work before the reader learns of the close.
            a.transport.send([heartbeat(1, 2, 2)])
            await asyncio.sleep(0)
            for seq in range(3, 200):
                a.transport.send([heartbeat(1, 2, seq)])
                await asyncio.sleep(0.01)
                if any(m.index >= 3 for m in b.from_(1)):
                    break
            await wait_until(
                "b hears a again after the reset", lambda: any(m.index >= 3 for m in b.from_(1))
            )

    run(main, uv=True)
