"""The doctor's measurements: fsync latency, peer round trips, timer lateness, CPU steal.

All of them run at the same time for ``seconds``, as they would in a member: the fsyncs in a
worker thread (``fdatasync`` releases the GIL, as the WAL's does), the peer probes and the
timer on the event loop. Every loop is bounded in time and in count.

- **fsync**: 2 KiB appended to a preallocated file in the data dir, ``fdatasync`` after each
  -- the WAL's pattern (a Ready's batch, then one fdatasync). The file is removed at the end.
- **peers**: every 100 ms per peer, a TCP connect and then the kvorum peer hello (the first
  exchange of every peer connection, answered by the member's event loop): the hello's round
  trip is what a paused or overloaded member delays, where the kernel would still accept the
  TCP connection. A peer that does not speak kvorum's protocol (an etcd peer URL) is timed by
  its TCP connect alone.
- **timer lateness**: a 10 ms ``asyncio.sleep`` in a loop; how much later than asked it wakes.
- **steal**: the ``steal`` share of all CPU time in ``/proc/stat`` over the run.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from kvorum.doctor.verdict import Measurements, PeerProbe, summarise
from kvorum.transport.codec import CodecError
from kvorum.transport.urls import parse_peer_url
from kvorum.transport.wire import Hello, HelloReply, StreamKind

__all__ = ["PROBE_INTERVAL_S", "MeasureOptions", "measure", "read_steal_ticks"]

FSYNC_WRITE_BYTES = 2048
FSYNC_FILE_BYTES = 16 * 1024 * 1024
MAX_FSYNC_SAMPLES = 200_000
TIMER_INTERVAL_S = 0.010
MAX_TIMER_SAMPLES = 100_000
PROBE_INTERVAL_S = 0.1
PROBE_TIMEOUT_S = 2.0
MAX_PROBES_PER_PEER = 10_000


@dataclass(frozen=True, slots=True)
class MeasureOptions:
    seconds: float
    data_dir: str
    peer_urls: tuple[str, ...] = ()
    member_count: int = 1
    heartbeat_ms: int = 100
    election_ms: int = 1000


def read_steal_ticks(stat_text: str) -> tuple[int, int] | None:
    """(steal ticks, all ticks) from the aggregate ``cpu`` line of ``/proc/stat`` text."""
    for line in stat_text.splitlines():
        fields = line.split()
        if fields and fields[0] == "cpu":
            ticks = [int(f) for f in fields[1:]]
            # user nice system idle iowait irq softirq steal guest guest_nice: guest time is
            # already counted in user/nice, so it is left out of the total.
            total = sum(ticks[:8])
            steal = ticks[7] if len(ticks) > 7 else 0
            return steal, total
    return None


def _steal_now() -> tuple[int, int] | None:
    try:
        return read_steal_ticks(Path("/proc/stat").read_text())
    except OSError:
        return None


def _fsync_loop(directory: str, seconds: float, stop: threading.Event) -> list[float]:
    """fdatasync after each small append, until ``seconds`` pass (blocking: a thread)."""
    path = os.path.join(directory, f".kvorum-doctor-{os.getpid()}.tmp")
    samples: list[float] = []
    block = b"\0" * FSYNC_WRITE_BYTES
    fd = os.open(path, os.O_CREAT | os.O_WRONLY | os.O_TRUNC, 0o600)
    try:
        with contextlib.suppress(OSError):  # not every file system preallocates
            os.posix_fallocate(fd, 0, FSYNC_FILE_BYTES)
        os.fsync(fd)
        offset = 0
        deadline = time.monotonic() + seconds
        while len(samples) < MAX_FSYNC_SAMPLES and not stop.is_set():
            if time.monotonic() >= deadline:
                break
            os.pwrite(fd, block, offset)
            started = time.perf_counter()
            os.fdatasync(fd)
            samples.append(time.perf_counter() - started)
            offset = (offset + FSYNC_WRITE_BYTES) % FSYNC_FILE_BYTES
    finally:
        os.close(fd)
        with contextlib.suppress(OSError):
            os.unlink(path)
    return samples


async def _timer_loop(seconds: float) -> list[float]:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + seconds
    samples: list[float] = []
    while loop.time() < deadline and len(samples) < MAX_TIMER_SAMPLES:
        asked = loop.time()
        await asyncio.sleep(TIMER_INTERVAL_S)
        samples.append(max(0.0, loop.time() - asked - TIMER_INTERVAL_S))
    return samples


async def _probe_once(host: str, port: int) -> tuple[float, float | None]:
    """(TCP connect seconds, hello round-trip seconds or None if the peer is not kvorum)."""
    started = time.perf_counter()
    reader, writer = await asyncio.open_connection(host, port)
    connected = time.perf_counter()
    try:
        # An INFO hello with cluster 0: any kvorum member answers it, and it is the cheapest
        # request its loop serves.
        writer.write(Hello(StreamKind.INFO, 0, 0, 0).encode())
        sent = time.perf_counter()
        try:
            HelloReply.decode(await reader.readexactly(HelloReply.SIZE))
        except (CodecError, asyncio.IncompleteReadError):
            return connected - started, None
        return connected - started, time.perf_counter() - sent
    finally:
        writer.close()
        with contextlib.suppress(Exception):
            await writer.wait_closed()


async def _probe_peer(url: str, seconds: float) -> PeerProbe:
    try:
        address = parse_peer_url(url)
    except ValueError as exc:
        return PeerProbe(url, None, "tcp connect", 0, str(exc))
    loop = asyncio.get_running_loop()
    deadline = loop.time() + seconds
    connects: list[float] = []
    hellos: list[float] = []
    failures = 0
    error = ""
    for _ in range(MAX_PROBES_PER_PEER):
        started = loop.time()
        if started >= deadline:
            break
        try:
            async with asyncio.timeout(PROBE_TIMEOUT_S):
                connect_s, hello_s = await _probe_once(address.host, address.port)
            connects.append(connect_s)
            if hello_s is not None:
                hellos.append(hello_s)
        except (OSError, TimeoutError) as exc:
            failures += 1
            error = f"{type(exc).__name__}: {exc}".rstrip(": ")
        await asyncio.sleep(max(0.0, started + PROBE_INTERVAL_S - loop.time()))
    if hellos:
        return PeerProbe(url, summarise(hellos), "kvorum hello", failures, error)
    return PeerProbe(url, summarise(connects), "tcp connect", failures, error)


async def measure(options: MeasureOptions) -> Measurements:
    """Run every measurement at once for ``options.seconds``."""
    os.makedirs(options.data_dir, exist_ok=True)
    stop = threading.Event()
    steal_before = _steal_now()
    fsync_task = asyncio.create_task(
        asyncio.to_thread(_fsync_loop, options.data_dir, options.seconds, stop)
    )
    try:
        timer_task = asyncio.create_task(_timer_loop(options.seconds))
        probes = await asyncio.gather(
            *(_probe_peer(url, options.seconds) for url in options.peer_urls)
        )
        timer_samples = await timer_task
        fsync_samples = await fsync_task
    finally:
        stop.set()
        if not fsync_task.done():
            with contextlib.suppress(Exception):
                await fsync_task
    steal_after = _steal_now()
    steal: float | None = None
    if steal_before is not None and steal_after is not None:
        ticks = steal_after[1] - steal_before[1]
        steal = (steal_after[0] - steal_before[0]) / ticks if ticks > 0 else 0.0
    return Measurements(
        seconds=options.seconds,
        fsync=summarise(fsync_samples),
        fsync_dir=os.path.abspath(options.data_dir),
        timer_lateness=summarise(timer_samples),
        steal_fraction=steal,
        peers=tuple(probes),
        member_count=options.member_count,
        heartbeat_ms=options.heartbeat_ms,
        election_ms=options.election_ms,
    )


def peer_urls_of(initial_cluster: str, name: str) -> tuple[tuple[str, ...], int]:
    """The other members' peer URLs in an ``--initial-cluster`` value, and the member count.

    ``name`` (this member) is left out of the probed URLs; every name counts as one member.
    """
    urls: list[str] = []
    names: set[str] = set()
    for item in initial_cluster.split(","):
        item = item.strip()
        if not item:
            continue
        member, sep, url = item.partition("=")
        if not sep:
            raise ValueError(f"--initial-cluster entry {item!r} is not name=url")
        names.add(member)
        if member != name:
            urls.append(url)
    return tuple(urls), max(len(names), 1)


def split_urls(value: str) -> Sequence[str]:
    return tuple(u.strip() for u in value.split(",") if u.strip())
