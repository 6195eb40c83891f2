"""A simulated member: a RawNode, its simulated disk, its state machine and its clients.

The member carries out each Ready as ``types.Ready`` prescribes: persist (snapshot, entries,
hard state), send, apply, serve reads, advance. Persisting may take simulated time; meanwhile a
leader's APP/HEARTBEAT/SNAP messages are already on the wire (thesis §10.2.1) and everything
else waits, and a crash in that window loses the unpersisted part. Every durable write, applied
entry, acknowledged write and answered read is reported to the checker as it happens.
"""

from __future__ import annotations

import random
from collections import Counter
from dataclasses import dataclass
from typing import Protocol

from kvorum.raft import Config, MemoryStorage, RawNode
from kvorum.raft.types import (
    CompactedError,
    ConfChange,
    ConfChangeType,
    ConfState,
    Entry,
    EntryType,
    Message,
    MessageType,
    Ready,
    StateRole,
)
from kvorum.sim.checker import READY_CONTRACT, Checker, InvariantViolation
from kvorum.sim.disk import DiskContractError, SimDisk
from kvorum.sim.statemachine import WRITE_PREFIX, StateMachine

EARLY_TYPES = frozenset({MessageType.APP, MessageType.HEARTBEAT, MessageType.SNAP})
"""Leader messages that may leave before the leader's own persist completes (§10.2.1)."""

MAX_READY_ROUNDS = 16
"""Readys carried out per input before yielding to the scheduler (bounds one event's work);
any left over are taken at the member's next input (a tick at the latest)."""
MAX_PENDING_PROPOSALS = 256
MAX_PENDING_READS = 64


@dataclass(frozen=True, slots=True)
class NodeParams:
    """Per-run settings every member shares, drawn from the seed."""

    initial_voters: tuple[int, ...]
    election_tick: int = 10
    heartbeat_tick: int = 1
    max_size_per_msg_bytes: int = 1 << 20
    max_inflight_msgs: int = 256
    snapshot_every_entries: int = 10
    snapshot_keep_entries: int = 2


class NodeHost(Protocol):
    """What a member needs from the cluster driving it."""

    checker: Checker
    stats: Counter[str]

    def send(self, msg: Message) -> None: ...

    def persist_delay_units(self, node: SimNode, rd: Ready) -> int:
        """Simulated time the persist step of ``rd`` takes; 0 means at once."""
        ...

    def schedule_persist_done(self, node: SimNode, delay_units: int) -> None: ...

    def trace(self, line: bytes) -> None: ...

    def leader_elected(self, node: SimNode) -> None:
        """``node`` just became leader (a chance to aim faults at the new leader)."""
        ...


class NullLogger:
    """The core's logger in simulation: silent, and cheap on the hot path."""

    def debug(self, msg: str, *args: object) -> None:
        pass

    def info(self, msg: str, *args: object) -> None:
        pass

    def warning(self, msg: str, *args: object) -> None:
        pass

    def error(self, msg: str, *args: object) -> None:
        pass


_LOGGER = NullLogger()


class SimNode:
    """One member across crashes: the disk persists, everything else is rebuilt on restart."""

    def __init__(self, node_id: int, params: NodeParams, host: NodeHost) -> None:
        self.id = node_id
        self.params = params
        self.host = host
        self.disk = SimDisk(node_id)
        self.incarnation = 0
        self.up = False
        self.paused_until = 0
        """Simulated time until which the member is stalled (takes no input, does not tick)."""
        self.raw: RawNode | None = None
        self.storage: MemoryStorage | None = None
        self.sm = StateMachine()
        self.conf_state = ConfState(voters=params.initial_voters)
        self.role = StateRole.FOLLOWER
        self.leader = 0
        self.term = 0
        self.pending: Ready | None = None
        """A Ready whose persist step is in progress; no new Ready is taken meanwhile."""
        self.proposals: dict[bytes, None] = {}
        self.reads: dict[bytes, int] = {}
        """Read contexts issued here -> the index the read must reach (checker.read_issued)."""
        self.waiting_reads: list[tuple[int, bytes]] = []
        self._last_snapshot_index = 0
        self._snapshot_after_add = False

    # --- lifecycle --------------------------------------------------------------------------

    def start(self, rng: random.Random) -> None:
        """(Re)start from the disk: snapshot, then the durable log, then the hard state."""
        disk = self.disk
        storage = MemoryStorage(conf_state=ConfState(voters=self.params.initial_voters))
        snap = disk.snapshot
        applied = 0
        if snap.is_empty():
            self.sm = StateMachine()
            self.conf_state = ConfState(voters=self.params.initial_voters)
        else:
            storage.apply_snapshot(snap)
            self.sm = StateMachine.decode(snap.data)
            self.conf_state = snap.metadata.conf_state
            applied = snap.metadata.index
        tail = disk.entries_after(applied)
        if tail:
            storage.append(tail)
        storage.set_hard_state(disk.hard_state)
        p = self.params
        config = Config(
            id=self.id,
            election_tick=p.election_tick,
            heartbeat_tick=p.heartbeat_tick,
            applied=applied,
            max_size_per_msg_bytes=p.max_size_per_msg_bytes,
            max_inflight_msgs=p.max_inflight_msgs,
        )
        self.storage = storage
        self.raw = RawNode(config, storage, rng, _LOGGER)
        self.incarnation += 1
        self.up = True
        self.role = StateRole.FOLLOWER
        self.leader = 0
        self.term = disk.hard_state.term
        self._last_snapshot_index = applied

    def crash(self) -> bool:
        """Stop at once; returns True if an unpersisted Ready was lost with it."""
        lost = self.pending is not None
        self.up = False
        self.paused_until = 0
        self.raw = None
        self.storage = None
        self.pending = None
        self.proposals.clear()
        self.reads.clear()
        self.waiting_reads.clear()
        self.role = StateRole.FOLLOWER
        self.leader = 0
        return lost

    # --- inputs -----------------------------------------------------------------------------

    def tick(self) -> None:
        assert self.raw is not None
        self.raw.tick()
        self.process()

    def step(self, msg: Message) -> None:
        assert self.raw is not None
        self.raw.step(msg)
        self.process()

    def propose(self, write_id: bytes) -> None:
        """Propose a client write; raises ProposalDroppedError as the core does."""
        assert self.raw is not None
        self.raw.propose(write_id)
        if len(self.proposals) >= MAX_PENDING_PROPOSALS:
            # The oldest is most likely lost (a dropped forward); it just won't count as acked.
            del self.proposals[next(iter(self.proposals))]
        self.proposals[write_id] = None
        self.process()

    def read(self, ctx: bytes, required_index: int) -> bool:
        """Issue a linearizable read; False if too many are already waiting here."""
        assert self.raw is not None
        if len(self.reads) + len(self.waiting_reads) >= MAX_PENDING_READS:
            return False
        self.raw.read_index(ctx)
        self.reads[ctx] = required_index
        self.process()
        return True

    # --- carrying out Readys ----------------------------------------------------------------

    def process(self) -> None:
        """Take and carry out Readys until there is none or one waits for its persist."""
        raw = self.raw
        host = self.host
        for _ in range(MAX_READY_ROUNDS):
            if raw is None or self.pending is not None or not raw.has_ready():
                return
            rd = raw.ready()
            self._observe(rd)
            delay = 0
            if rd.entries or rd.hard_state is not None or not rd.snapshot.is_empty():
                delay = host.persist_delay_units(self, rd)
            if delay <= 0:
                self._carry_out(rd, early_sent=False)
                continue
            self.pending = rd
            send = host.send
            sent = 0
            for m in rd.messages:
                if m.type in EARLY_TYPES:
                    send(m)
                    sent += 1
            if sent:
                host.stats["early_sends"] += 1
            host.schedule_persist_done(self, delay)
            return

    def persist_done(self) -> None:
        """The persist step of the pending Ready finished: carry out the rest of it."""
        rd = self.pending
        if rd is None or not self.up:
            return
        self.pending = None
        self._carry_out(rd, early_sent=True)
        self.process()

    def _observe(self, rd: Ready) -> None:
        """Track term and role; check each new leader (§5.2, §5.4) and each leader commit."""
        checker = self.host.checker
        hs = rd.hard_state
        same_term = hs is None or hs.term == self.term
        if not same_term:
            assert hs is not None
            self.term = hs.term
            checker.observe_term(self.term)
        was_leader = self.role == StateRole.LEADER
        ss = rd.soft_state
        if ss is not None:
            self.leader = ss.leader
            self.role = ss.role
        is_leader = self.role == StateRole.LEADER
        if not is_leader:
            return
        disk = self.disk
        new = rd.entries
        first_new = new[0].index if new else disk.last_index() + 1

        def term_at(index: int) -> int | None:
            """Term at ``index`` in the log as the core sees it: durable part plus new entries."""
            if index >= first_new:
                pos = index - first_new
                return new[pos].term if pos < len(new) else None
            return disk.term_at(index)

        if not was_leader:
            checker.leader(self.id, self.term)
            self.host.leader_elected(self)
            first_index = disk.offset + 1
            if not rd.snapshot.is_empty():
                first_index = rd.snapshot.metadata.index + 1
            checker.leader_log(self.id, self.term, first_index, term_at)
        elif hs is not None and same_term and hs.commit > disk.hard_state.commit:
            checker.leader_commit(self.id, self.term, hs.commit, term_at(hs.commit))

    def _carry_out(self, rd: Ready, early_sent: bool) -> None:
        raw = self.raw
        storage = self.storage
        assert raw is not None and storage is not None
        host = self.host
        checker = host.checker
        disk = self.disk
        nid = self.id
        # 1. Persist: snapshot, entries, hard state — the simulator's disk and the core's storage.
        try:
            if not rd.snapshot.is_empty():
                disk.save_snapshot(rd.snapshot)
                storage.apply_snapshot(rd.snapshot)
            if rd.entries:
                prev_index = disk.append(rd.entries)
                prev_term = disk.term_at(prev_index)
                checker.persisted(nid, prev_index, prev_term or 0, rd.entries)
                storage.append(rd.entries)
            if rd.hard_state is not None:
                disk.set_hard_state(rd.hard_state)
                storage.set_hard_state(rd.hard_state)
        except DiskContractError as exc:
            raise InvariantViolation(READY_CONTRACT, checker.time, (nid,), exc.detail) from None
        # 2. Send what had to wait for durability.
        send = host.send
        for m in rd.messages:
            if not (early_sent and m.type in EARLY_TYPES):
                send(m)
        # 3. Apply the snapshot, then the committed entries.
        if not rd.snapshot.is_empty():
            self._restore(rd)
        for e in rd.committed_entries:
            self._apply(e)
        # 4. Reads: check each answer, serve it once the state machine has caught up.
        if rd.read_states:
            for rs in rd.read_states:
                required = self.reads.pop(rs.request_ctx, None)
                if required is None:
                    host.stats["reads_unknown_ctx"] += 1
                    continue
                checker.read_answered(nid, rs.request_ctx, rs.index, required)
                self.waiting_reads.append((rs.index, rs.request_ctx))
        if self.waiting_reads:
            self._serve_reads()
        # 5. Advance, then let the state machine snapshot and compact (as etcd's server does).
        raw.advance(rd)
        due = (
            self.sm.applied_index - self._last_snapshot_index >= self.params.snapshot_every_entries
        )
        if due or self._snapshot_after_add:
            self._snapshot_after_add = False
            if self.sm.applied_index > self._last_snapshot_index:
                self._snapshot()

    def _restore(self, rd: Ready) -> None:
        meta = rd.snapshot.metadata
        sm = StateMachine.decode(rd.snapshot.data)
        self.host.checker.contract(
            sm.applied_index == meta.index,
            self.id,
            f"snapshot metadata says {meta.index}, its data {sm.applied_index}",
        )
        self.host.checker.snapshot_restored(self.id, meta.index, sm.chain)
        self.sm = sm
        self.conf_state = meta.conf_state
        self._last_snapshot_index = meta.index
        self.host.stats["snapshots_installed"] += 1

    def _apply(self, e: Entry) -> None:
        checker = self.host.checker
        nid = self.id
        durable_term = self.disk.term_at(e.index)
        # Ready contract: committed entries are durable locally before they are applied.
        checker.contract(
            durable_term == e.term,
            nid,
            f"committed entry {e.index} (term {e.term}) is not durable here"
            f" (durable term {durable_term})",
        )
        checker.contract(
            e.index == self.sm.applied_index + 1,
            nid,
            f"committed entry {e.index} handed out after applied {self.sm.applied_index}",
        )
        self.sm.apply(e)
        checker.applied(nid, e, self.sm.chain)
        if e.type == EntryType.CONF_CHANGE:
            assert self.raw is not None
            cc = ConfChange.decode(e.data)
            self.conf_state = self.raw.apply_conf_change(cc)
            checker.conf_applied(nid, e.index, self.conf_state)
            if cc.type in (ConfChangeType.ADD_NODE, ConfChangeType.ADD_LEARNER_NODE):
                # A member refuses a snapshot whose configuration does not list it (as in
                # etcd), so a joiner behind the leader's compacted log needs a snapshot taken
                # after its addition: take one now rather than after `snapshot_every_entries`.
                self._snapshot_after_add = True
            self.host.stats[f"conf_applied_{cc.type.name.lower()}"] += 1
            self.host.trace(b"conf %d %d %d %d" % (nid, e.index, cc.type, cc.node_id))
        elif e.data.startswith(WRITE_PREFIX) and e.data in self.proposals:
            del self.proposals[e.data]
            checker.acknowledged(nid, e.data, e.index)
            self.host.stats["writes_acked"] += 1

    def _serve_reads(self) -> None:
        applied = self.sm.applied_index
        still: list[tuple[int, bytes]] = []
        for index, ctx in self.waiting_reads:
            if index <= applied:
                self.host.stats["reads_served"] += 1
            else:
                still.append((index, ctx))
        self.waiting_reads = still

    def _snapshot(self) -> None:
        """Snapshot the state machine at its applied index and compact the log behind it."""
        storage = self.storage
        assert storage is not None
        index = self.sm.applied_index
        snap = storage.create_snapshot(index, self.conf_state, self.sm.encode())
        compact_to = max(0, index - self.params.snapshot_keep_entries)
        try:
            if compact_to > 0:
                storage.compact(compact_to)
        except CompactedError:
            compact_to = 0
        self.disk.take_snapshot(snap, compact_to)
        self._last_snapshot_index = index
        self.host.stats["snapshots_taken"] += 1
