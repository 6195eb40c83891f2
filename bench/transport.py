"""Peer transport throughput between two members on loopback.

The receiver answers every ``--ack-every`` messages with an APP_RESP carrying its count, and
the sender keeps at most ``--window`` messages unanswered — the shape of raft's in-flight
window — so no queue overflows and the figure is sustained throughput, not burst.

    .venv/bin/python bench/transport.py                 # both members in one process
    .venv/bin/python bench/transport.py --processes 2   # receiver in a child process
    .venv/bin/python bench/transport.py --loop asyncio  # plain asyncio instead of uvloop
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import logging
import multiprocessing
import multiprocessing.connection
import time
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any, TypeVar

import uvloop

from kvorum.raft.types import Entry, Message, MessageType
from kvorum.transport import PeerTransport

SENDER, RECEIVER, CLUSTER = 1, 2, 0xBE4C
MiB = 1024 * 1024
ACK_BYTES = 4 * MiB  # the receiver also acknowledges every this many payload bytes

# name -> (message factory, messages to send)
Factory = Callable[[int], Message]


def _scenarios(scale: float) -> dict[str, tuple[Factory, int]]:
    def heartbeat(i: int) -> Message:
        return Message(MessageType.HEARTBEAT, to=RECEIVER, frm=SENDER, term=3, index=i, commit=i)

    def app(size: int) -> Factory:
        payload = b"v" * size
        return lambda i: Message(
            MessageType.APP,
            to=RECEIVER,
            frm=SENDER,
            term=3,
            index=i,
            log_term=3,
            commit=i,
            entries=(Entry(3, i + 1, data=payload),),
        )

    def n(count: int) -> int:
        return max(1, int(count * scale))

    return {
        "heartbeat": (heartbeat, n(200_000)),
        "append 128 B": (app(128), n(200_000)),
        "append 4 KiB": (app(4096), n(50_000)),
        "append 64 KiB": (app(64 * 1024), n(8_000)),
        "append 1 MiB": (app(MiB), n(600)),
    }


class _Receiver:
    """Counts arrivals and acknowledges every ``ack_every``-th (and each scenario's last)."""

    def __init__(self, ack_every: int) -> None:
        self.count = 0
        self.unacked_bytes = 0
        self.ack_every = ack_every
        self.transport: PeerTransport | None = None

    def on_message(self, msg: Message) -> None:
        self.count += 1
        self.unacked_bytes += len(msg.entries[0].data) if msg.entries else 0
        last = msg.reject  # the bench marks each scenario's last message with reject
        if self.count % self.ack_every == 0 or self.unacked_bytes >= ACK_BYTES or last:
            assert self.transport is not None
            self.transport.send(
                [Message(MessageType.APP_RESP, to=SENDER, frm=RECEIVER, index=self.count)]
            )
            self.unacked_bytes = 0
        if last:
            self.count = 0

    async def start(self, sender_url: str) -> str:
        self.transport = PeerTransport(
            RECEIVER,
            CLUSTER,
            ["http://127.0.0.1:0"],
            self.on_message,
            lambda _peer: None,
            lambda _peer, _ok: None,
        )
        await self.transport.start()
        self.transport.add_peer(SENDER, [sender_url])
        return self.transport.bound_urls[0]

    async def stop(self) -> None:
        if self.transport is not None:
            await self.transport.stop()


Result = tuple[str, int, float, float]


async def _bench(
    args: argparse.Namespace,
    scenarios: dict[str, tuple[Factory, int]],
    start_receiver: Callable[[str], Awaitable[str]],
) -> list[Result]:
    acked = 0
    progress = asyncio.Event()
    unreachable: list[int] = []

    def on_message(msg: Message) -> None:
        nonlocal acked
        acked = msg.index
        progress.set()

    sender = PeerTransport(
        SENDER,
        CLUSTER,
        ["http://127.0.0.1:0"],
        on_message,
        unreachable.append,
        lambda _peer, _ok: None,
    )
    await sender.start()
    results: list[Result] = []
    try:
        sender.add_peer(RECEIVER, [await start_receiver(sender.bound_urls[0])])
        for name, (factory, total) in scenarios.items():
            messages = [factory(i) for i in range(total)]
            messages[-1] = dataclasses.replace(messages[-1], reject=True)
            size_bytes = sum(len(m.entries[0].data) if m.entries else 0 for m in messages)
            window = max(
                1,
                min(
                    args.window,
                    args.window_mib * MiB // len(messages[0].entries[0].data)
                    if messages[0].entries
                    else args.window,
                ),
            )
            acked = sent = 0
            start = time.perf_counter()
            while acked < total:
                window_end = min(total, acked + window)
                if sent < window_end:
                    upto = min(window_end, sent + args.batch)
                    sender.send(messages[sent:upto])
                    sent = upto
                    await asyncio.sleep(0)
                else:
                    progress.clear()
                    await progress.wait()
                if unreachable:
                    raise SystemExit(f"messages were dropped during {name}: lower --window")
            elapsed = time.perf_counter() - start
            results.append((name, total, elapsed, size_bytes / MiB))
    finally:
        await sender.stop()
    return results


async def _one_process(
    args: argparse.Namespace, scenarios: dict[str, tuple[Factory, int]]
) -> list[Result]:
    receiver = _Receiver(args.ack_every)
    try:
        return await _bench(args, scenarios, receiver.start)
    finally:
        await receiver.stop()


def _child(conn: multiprocessing.connection.Connection, ack_every: int, loop: str) -> None:
    async def main() -> None:
        receiver = _Receiver(ack_every)
        conn.send(await receiver.start(conn.recv()))
        try:
            await asyncio.get_running_loop().run_in_executor(None, conn.recv)  # until "done"
        finally:
            await receiver.stop()

    _run(loop, main())


def _two_processes(
    args: argparse.Namespace, scenarios: dict[str, tuple[Factory, int]]
) -> list[Result]:
    parent, child_end = multiprocessing.Pipe()
    child = multiprocessing.Process(target=_child, args=(child_end, args.ack_every, args.loop))
    child.start()

    async def start_receiver(sender_url: str) -> str:
        parent.send(sender_url)
        url = await asyncio.get_running_loop().run_in_executor(None, parent.recv)
        assert isinstance(url, str)
        return url

    try:
        return _run(args.loop, _bench(args, scenarios, start_receiver))
    finally:
        parent.send("done")
        child.join(10)


T = TypeVar("T")


def _run(loop: str, coro: Coroutine[Any, Any, T]) -> T:
    if loop == "uvloop":
        return uvloop.run(coro)
    return asyncio.run(coro)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--processes", type=int, choices=(1, 2), default=1)
    parser.add_argument("--loop", choices=("uvloop", "asyncio"), default="uvloop")
    parser.add_argument("--scale", type=float, default=1.0, help="multiply message counts")
    parser.add_argument("--window", type=int, default=1000, help="at most the queue bound")
    parser.add_argument("--window-mib", type=int, default=32, help="and at most this many MiB")
    parser.add_argument("--batch", type=int, default=256, help="messages per send() call")
    parser.add_argument("--ack-every", type=int, default=128)
    args = parser.parse_args()
    # Peers going away at the end of the run is expected: keep it off the report.
    logging.getLogger("kvorum.transport").setLevel(logging.ERROR)
    scenarios = _scenarios(args.scale)
    print(f"loop={args.loop} processes={args.processes} window={args.window} batch={args.batch}")
    if args.processes == 1:
        results = _run(args.loop, _one_process(args, scenarios))
    else:
        results = _two_processes(args, scenarios)
    print(f"{'scenario':<16}{'messages':>10}{'seconds':>9}{'msgs/s':>11}{'MiB/s':>9}")
    for name, total, elapsed, mib in results:
        print(f"{name:<16}{total:>10}{elapsed:>9.2f}{total / elapsed:>11.0f}{mib / elapsed:>9.1f}")


if __name__ == "__main__":
    main()
