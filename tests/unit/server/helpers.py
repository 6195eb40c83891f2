"""A cluster of real RaftNodes in one event loop, each with its own data dir and real WAL.

``LocalNetwork`` is the in-memory transport: it delivers each message on a later loop
turn (as a socket would), drops messages to stopped members or over cut links (and
tells the sender the peer is unreachable), and records what it delivered and when.
``LogMachine`` is the state machine: an ordered list of applied payloads that
snapshots to bytes and wakes proposers through the shared ``Wait``.
"""

from __future__ import annotations

import asyncio
import contextlib
import struct
import time
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import uvloop

from kvorum.datadir import DataDir
from kvorum.raft import Entry, Message, MessageType, Snapshot
from kvorum.server import (
    RaftNode,
    RaftNodeConfig,
    RaftStorage,
    StorageOptions,
    Wait,
    decode_envelope,
)
from kvorum.server.errors import ServerError

CLUSTER_ID = 0xC0FFEE
HEARTBEAT_S = 0.03
ELECTION_TICKS = 10
_LEN = struct.Struct(">I")


@dataclass(frozen=True, slots=True)
class Delivery:
    msg: Message
    at_s: float


class LocalNetwork:
    """Routes messages between RaftNodes of one loop; links can be cut both ways."""

    def __init__(self) -> None:
        self.nodes: dict[int, RaftNode] = {}
        self.cut: set[frozenset[int]] = set()
        self.delivered: list[Delivery] = []
        self.sent_by_type: Counter[MessageType] = Counter()

    def transport(self, member_id: int) -> LocalTransport:
        return LocalTransport(self, member_id)

    def route(self, frm: int, msg: Message) -> None:
        self.sent_by_type[msg.type] += 1
        asyncio.get_running_loop().call_soon(self._deliver, frm, msg)

    def _deliver(self, frm: int, msg: Message) -> None:
        sender = self.nodes.get(frm)
        target = self.nodes.get(msg.to)
        if target is None or frozenset((frm, msg.to)) in self.cut:
            if sender is not None:
                sender.report_unreachable(msg.to)
                if msg.type == MessageType.SNAP:
                    sender.report_snapshot(msg.to, False)
            return
        self.delivered.append(Delivery(msg, time.monotonic()))
        target.receive(msg)
        if msg.type == MessageType.SNAP and sender is not None:
            sender.report_snapshot(msg.to, True)


class LocalTransport:
    """One member's face on the ``LocalNetwork`` (the ``Transport`` protocol)."""

    def __init__(self, network: LocalNetwork, member_id: int) -> None:
        self._network = network
        self._id = member_id
        self.flushes = 0

    def send(self, messages: Iterable[Message]) -> None:
        self.flushes += 1
        for msg in messages:
            self._network.route(self._id, msg)

    def add_peer(self, peer_id: int, urls: Sequence[str]) -> None:
        del peer_id, urls  # every member of the network is reachable by id

    def remove_peer(self, peer_id: int) -> None:
        self._network.cut.add(frozenset((self._id, peer_id)))


def encode_values(values: Sequence[bytes]) -> bytes:
    return b"".join(_LEN.pack(len(v)) + v for v in values)


def decode_values(data: bytes) -> list[bytes]:
    values, pos = [], 0
    while pos < len(data):
        (size,) = _LEN.unpack_from(data, pos)
        pos += _LEN.size
        values.append(data[pos : pos + size])
        pos += size
    return values


class LogMachine:
    """The state machine: every applied payload in order; idempotent by index."""

    def __init__(self, wait: Wait) -> None:
        self.wait = wait
        self.applied_index = 0
        self.values: list[bytes] = []
        self.snapshots_restored = 0
        self.apply_calls = 0
        # Set by a test to play a membership store that refuses every conf change.
        self.reject_conf_changes = False

    async def apply(self, entries: Sequence[Entry], snapshot: Snapshot | None) -> None:
        self.apply_calls += 1
        if snapshot is not None and snapshot.metadata.index > self.applied_index:
            self.values = decode_values(snapshot.data)
            self.applied_index = snapshot.metadata.index
            self.snapshots_restored += 1
        for entry in entries:
            if entry.index <= self.applied_index:
                continue  # replayed after a restart: already applied
            assert entry.index == self.applied_index + 1, (entry.index, self.applied_index)
            self.applied_index = entry.index
            envelope = decode_envelope(entry)
            if envelope is None:
                continue
            self.values.append(envelope.payload)
            self.wait.trigger(envelope.request_id, entry.index)

    def conf_change_rejected(self, index: int) -> bool:
        return self.reject_conf_changes

    def snapshot_data(self) -> bytes:
        return encode_values(self.values)


class Member:
    """One member across restarts: the data dir persists, the rest is rebuilt on start."""

    def __init__(
        self,
        member_id: int,
        data_path: Path,
        network: LocalNetwork,
        voters: Sequence[int],
        options: StorageOptions,
    ) -> None:
        self.id = member_id
        self.data_dir = DataDir(data_path)
        self.network = network
        self.voters = tuple(voters)
        self.options = options
        self.node: RaftNode | None = None
        self.machine: LogMachine | None = None
        self.transport: LocalTransport | None = None

    @property
    def raft(self) -> RaftNode:
        assert self.node is not None, f"member {self.id:x} is not running"
        return self.node

    @property
    def sm(self) -> LogMachine:
        assert self.machine is not None
        return self.machine

    @property
    def up(self) -> bool:
        return self.node is not None

    async def start(self, **config: object) -> None:
        storage = RaftStorage.open_or_create(
            self.data_dir, self.id, CLUSTER_ID, self.voters, self.options
        )
        wait = Wait()
        self.machine = LogMachine(wait)
        cfg = RaftNodeConfig(
            member_id=self.id,
            heartbeat_interval_s=HEARTBEAT_S,
            election_ticks=ELECTION_TICKS,
            seed=self.id,
            **config,  # type: ignore[arg-type]
        )
        self.node = RaftNode(cfg, storage, self.machine, wait=wait)
        self.network.nodes[self.id] = self.node
        self.transport = self.network.transport(self.id)
        await self.node.start(self.transport)

    async def stop(self) -> None:
        node, self.node = self.node, None
        self.network.nodes.pop(self.id, None)
        if node is not None:
            await node.stop()


class Cluster:
    def __init__(self, members: list[Member], network: LocalNetwork) -> None:
        self.members = members
        self.network = network

    def member(self, member_id: int) -> Member:
        return next(m for m in self.members if m.id == member_id)

    def running(self) -> list[Member]:
        return [m for m in self.members if m.up]

    async def leader(self, timeout_s: float = 10.0) -> Member:
        """The member all running members agree leads (waits for one)."""
        deadline = time.monotonic() + timeout_s
        while True:
            up = self.running()
            leaders = [m for m in up if m.raft.is_leader]
            if len(leaders) == 1:
                lead = leaders[0]
                if all(m.raft.leader_id == lead.id for m in up):
                    return lead
            if time.monotonic() > deadline:
                state = {f"{m.id:x}": (m.raft.role.name, m.raft.leader_id) for m in up}
                raise AssertionError(f"no agreed leader within {timeout_s} s: {state}")
            await asyncio.sleep(0.01)

    async def propose(self, payload: bytes, via: Member | None = None, attempts: int = 20) -> int:
        """Propose until applied (retrying through elections); returns the entry index.

        A retried proposal may be applied twice (the first attempt's outcome is unknown).
        """
        last: ServerError | None = None
        for _ in range(attempts):
            member = via if via is not None else await self.leader()
            try:
                result = await member.raft.propose(payload, timeout_s=2.0)
                assert isinstance(result, int)
                return result
            except ServerError as exc:
                last = exc
                await asyncio.sleep(0.05)
        raise AssertionError(f"proposal {payload!r} never applied: {last}")

    async def converge(self, timeout_s: float = 15.0) -> None:
        """Wait until every running member has applied the leader's commit index."""
        lead = await self.leader()
        target = lead.raft.commit_index
        deadline = time.monotonic() + timeout_s
        while not all(m.sm.applied_index >= target for m in self.running()):
            if time.monotonic() > deadline:
                state = {f"{m.id:x}": m.sm.applied_index for m in self.running()}
                raise AssertionError(f"members did not reach index {target}: {state}")
            await asyncio.sleep(0.01)


@contextlib.asynccontextmanager
async def cluster(
    tmp_path: Path,
    size: int = 3,
    options: StorageOptions | None = None,
    options_for: Callable[[int], StorageOptions] | None = None,
    **config: object,
) -> AsyncIterator[Cluster]:
    """``size`` members started in ``tmp_path``; ``options_for(id)`` overrides ``options``."""
    network = LocalNetwork()
    ids = [0x1000 + i for i in range(1, size + 1)]
    opts = options if options is not None else StorageOptions(segment_size_bytes=256 * 1024)
    members = [
        Member(i, tmp_path / f"m{i:x}", network, ids, options_for(i) if options_for else opts)
        for i in ids
    ]
    c = Cluster(members, network)
    try:
        for m in members:
            await m.start(**config)
        yield c
    finally:
        for m in members:
            await m.stop()


def run(main: Callable[[], Awaitable[None]], timeout_s: float = 30.0, uv: bool = False) -> None:
    """Run the coroutine function ``main`` in a fresh loop (uvloop's if ``uv``) with an
    overall time limit."""

    async def wrapper() -> None:
        async with asyncio.timeout(timeout_s):
            await main()

    with asyncio.Runner(loop_factory=uvloop.new_event_loop if uv else None) as runner:
        runner.run(wrapper())
