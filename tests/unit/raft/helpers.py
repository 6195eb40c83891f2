"""A tiny in-memory cluster for raft unit tests: deliver, cut, isolate, drop.

Each node carries out its Ready exactly as the contract on ``types.Ready`` says
(persist snapshot, entries, hard state into its MemoryStorage; send; apply;
advance). Messages are queued and delivered by ``stabilize()`` until the cluster
is quiet. The network also checks one durability rule on every Ready: a granted
VOTE_RESP leaves a node only once its storage holds that vote.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import replace
from typing import Any

from kvorum.raft import (
    ConfChange,
    Config,
    ConfState,
    Entry,
    EntryType,
    MemoryStorage,
    Message,
    MessageType,
    RawNode,
    ReadState,
    Ready,
    StateRole,
)


class NullLogger:
    def debug(self, msg: str, *args: object) -> None:
        pass

    def info(self, msg: str, *args: object) -> None:
        pass

    def warning(self, msg: str, *args: object) -> None:
        pass

    def error(self, msg: str, *args: object) -> None:
        pass


LOGGER = NullLogger()

Filter = Callable[[Message], Message | None]


def make_node(
    nid: int,
    voters: tuple[int, ...] = (1,),
    learners: tuple[int, ...] = (),
    *,
    storage: MemoryStorage | None = None,
    seed: int = 0,
    **cfg: Any,
) -> tuple[RawNode, MemoryStorage]:
    st = storage if storage is not None else MemoryStorage(ConfState(voters, learners))
    config = Config(id=nid, **cfg)
    return RawNode(config, st, random.Random(seed * 1000 + nid), LOGGER), st


class Node:
    """A member: its RawNode, its storage and what it applied."""

    def __init__(self, nid: int, raw: RawNode, storage: MemoryStorage, cfg: dict[str, Any]):
        self.id = nid
        self.raw = raw
        self.storage = storage
        self.cfg = cfg
        self.applied: list[Entry] = []
        self.read_states: list[ReadState] = []
        self.conf_states: list[ConfState] = []
        self.auto_apply_conf = True

    @property
    def role(self) -> StateRole:
        return self.raw.status().role

    @property
    def term(self) -> int:
        return self.raw.status().term

    def applied_data(self) -> list[bytes]:
        return [e.data for e in self.applied if e.type == EntryType.NORMAL and e.data]


class Network:
    def __init__(
        self,
        ids: tuple[int, ...] = (1, 2, 3),
        learners: tuple[int, ...] = (),
        seed: int = 0,
        **cfg: Any,
    ) -> None:
        self.seed = seed
        self.nodes: dict[int, Node] = {}
        self.queue: list[Message] = []
        self.cut_links: set[tuple[int, int]] = set()
        self.filters: list[Filter] = []
        self.sent: list[Message] = []  # every message that left a node
        self.report_snapshots = True
        for nid in (*ids, *learners):
            self.add_node(nid, ids, learners, **cfg)

    # --- membership of the simulated cluster ----------------------------------------

    def add_node(
        self,
        nid: int,
        voters: tuple[int, ...],
        learners: tuple[int, ...] = (),
        **cfg: Any,
    ) -> Node:
        raw, st = make_node(nid, voters, learners, seed=self.seed, **cfg)
        node = Node(nid, raw, st, dict(cfg))
        self.nodes[nid] = node
        return node

    def restart(self, nid: int) -> Node:
        """Crash ``nid`` and start it from what its storage holds (memory is lost)."""
        old = self.nodes[nid]
        raw, st = make_node(nid, storage=old.storage, seed=self.seed + 7, **old.cfg)
        node = Node(nid, raw, st, old.cfg)
        self.nodes[nid] = node
        self.queue = [m for m in self.queue if m.to != nid]
        return node

    # --- faults ----------------------------------------------------------------------

    def cut(self, a: int, b: int) -> None:
        self.cut_links |= {(a, b), (b, a)}

    def isolate(self, nid: int) -> None:
        for other in self.nodes:
            if other != nid:
                self.cut(nid, other)

    def recover(self) -> None:
        self.cut_links.clear()
        self.filters.clear()

    def drop(self, frm: int, to: int, mtype: MessageType | None = None) -> None:
        def f(m: Message) -> Message | None:
            if m.frm == frm and m.to == to and (mtype is None or m.type == mtype):
                return None
            return m

        self.filters.append(f)

    # --- driving ---------------------------------------------------------------------

    def node(self, nid: int) -> Node:
        return self.nodes[nid]

    def carry_out(self, nid: int, rd: Ready) -> None:
        """Persist, queue messages, apply, advance: one Ready of node ``nid``."""
        node = self.nodes[nid]
        st = node.storage
        if not rd.snapshot.is_empty():
            st.apply_snapshot(rd.snapshot)
            node.applied = []
        st.append(rd.entries)
        if rd.hard_state is not None:
            st.set_hard_state(rd.hard_state)
        hs = st.hard_state()
        for m in rd.messages:
            if m.type == MessageType.VOTE_RESP and not m.reject:
                # Durability (§5.2): the vote is on disk before the grant is sent.
                assert hs.term == m.term and hs.vote == m.to, (
                    f"node {nid} granted a vote to {m.to} in term {m.term} "
                    f"but persisted vote {hs.vote} in term {hs.term}"
                )
            self.send(m)
        for e in rd.committed_entries:
            node.applied.append(e)
            if e.type == EntryType.CONF_CHANGE and node.auto_apply_conf:
                node.conf_states.append(node.raw.apply_conf_change(ConfChange.decode(e.data)))
        node.read_states.extend(rd.read_states)
        node.raw.advance(rd)

    def send(self, m: Message) -> None:
        self.sent.append(m)
        self.queue.append(m)

    def process(self, nid: int) -> bool:
        node = self.nodes[nid]
        if not node.raw.has_ready():
            return False
        self.carry_out(nid, node.raw.ready())
        return True

    def deliver(self, m: Message) -> None:
        ok = self._deliver(m)
        if self.report_snapshots and m.type == MessageType.SNAP and m.frm in self.nodes:
            # The transport reports how a snapshot send ended (as etcd's does).
            self.nodes[m.frm].raw.report_snapshot(m.to, ok)

    def _deliver(self, m: Message) -> bool:
        if (m.frm, m.to) in self.cut_links or m.to not in self.nodes:
            return False
        for f in self.filters:
            filtered = f(m)
            if filtered is None:
                return False
            m = filtered
        self.nodes[m.to].raw.step(m)
        return True

    def stabilize(self, max_rounds: int = 1000) -> None:
        """Process Readys and deliver messages until nothing moves."""
        for _ in range(max_rounds):
            busy = False
            for nid in list(self.nodes):
                busy |= self.process(nid)
            if not self.queue and not busy:
                return
            queue, self.queue = self.queue, []
            for m in queue:
                self.deliver(m)
        raise AssertionError("network did not stabilize")

    def tick(self, nid: int, n: int = 1) -> None:
        for _ in range(n):
            self.nodes[nid].raw.tick()

    def tick_all(self, n: int = 1, stabilize: bool = True) -> None:
        for _ in range(n):
            for node in self.nodes.values():
                node.raw.tick()
            if stabilize:
                self.stabilize()

    def elect(self, nid: int) -> None:
        self.nodes[nid].raw.campaign()
        self.stabilize()
        assert self.nodes[nid].role == StateRole.LEADER, f"node {nid} failed to become leader"

    def leaders(self) -> list[int]:
        return [nid for nid, n in self.nodes.items() if n.role == StateRole.LEADER]

    def propose(self, nid: int, data: bytes) -> None:
        self.nodes[nid].raw.propose(data)
        self.stabilize()


def msg(mtype: MessageType, frm: int, to: int, term: int, **kw: object) -> Message:
    return Message(mtype, to=to, frm=frm, term=term, **kw)  # type: ignore[arg-type]


def strip_entries(m: Message, keep: Callable[[Entry], bool]) -> Message:
    return replace(m, entries=tuple(e for e in m.entries if keep(e)))


def storage_with_log(
    voters: tuple[int, ...], terms: list[int], term: int, commit: int = 0
) -> MemoryStorage:
    """A storage holding entries with the given terms (index 1..n) and a hard state."""
    from kvorum.raft import HardState

    st = MemoryStorage(ConfState(voters))
    st.append([Entry(t, i + 1, data=b"old%d" % (i + 1)) for i, t in enumerate(terms)])
    st.set_hard_state(HardState(term=term, vote=0, commit=commit))
    return st
