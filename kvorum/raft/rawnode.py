"""RawNode: the application's handle on the raft core, and the Ready/advance protocol.

Everything the core wants done comes out of ``ready()`` as data; the application
carries it out in the order written on ``types.Ready`` and calls ``advance(rd)``.
One Ready is outstanding at a time: until ``advance`` is called ``has_ready()`` is
False and ``ready()`` raises, while ``step``/``tick``/``propose`` keep working and
their output waits for the next Ready.
"""

from __future__ import annotations

import random

from kvorum.raft.config import Config
from kvorum.raft.raft import Raft
from kvorum.raft.types import (
    EMPTY_SNAPSHOT,
    LOCAL_MESSAGES,
    ConfChange,
    ConfState,
    EntryType,
    HardState,
    Logger,
    Message,
    RaftError,
    Ready,
    SoftState,
    Status,
    Storage,
)


class RawNode:
    """A raft node without threads or I/O: tick it, step messages in, take Readys out."""

    __slots__ = ("_outstanding", "_prev_hard", "_prev_soft", "_raft")

    def __init__(
        self, config: Config, storage: Storage, rng: random.Random, logger: Logger
    ) -> None:
        self._raft = Raft(config, storage, rng, logger)
        self._prev_soft = SoftState(self._raft.lead, self._raft.role)
        self._prev_hard = self._raft.hard_state()
        self._outstanding: Ready | None = None

    # --- input ----------------------------------------------------------------------

    def tick(self) -> None:
        """Advance logical time by one tick (heartbeats and election timeouts)."""
        self._raft.tick()

    def campaign(self) -> None:
        """Start an election now (pre-vote first when enabled)."""
        self._raft.hup(transfer=False)

    def propose(self, data: bytes) -> None:
        """Propose ``data`` for the log; raises ProposalDroppedError with the reason."""
        self._raft.propose(data, EntryType.NORMAL)

    def propose_conf_change(self, cc: ConfChange) -> None:
        """Propose a membership change; only one may be pending (not yet applied)."""
        self._raft.propose(cc.encode(), EntryType.CONF_CHANGE)

    def step(self, msg: Message) -> None:
        """Feed a message received from a peer; local message types are refused."""
        if msg.type in LOCAL_MESSAGES:
            raise RaftError(f"{msg.type.name} is a local message and cannot be stepped")
        self._raft.step(msg)

    def read_index(self, ctx: bytes) -> None:
        """Ask for a linearizable read index; answered by a ReadState with ``ctx``.

        Dropped (no answer) when no leader is known; the caller times out and retries.
        """
        self._raft.read_index(ctx)

    def transfer_leader(self, to: int) -> None:
        """Ask the leader to hand leadership to ``to`` (thesis §3.10)."""
        self._raft.transfer_leader(to)

    def apply_conf_change(self, cc: ConfChange) -> ConfState:
        """Apply a committed CONF_CHANGE entry; returns the new membership."""
        return self._raft.apply_conf_change(cc)

    def report_unreachable(self, node_id: int) -> None:
        self._raft.report_unreachable(node_id)

    def report_snapshot(self, node_id: int, ok: bool) -> None:
        self._raft.report_snapshot(node_id, ok)

    # --- output -------------------------------------------------------------------------

    def has_ready(self) -> bool:
        if self._outstanding is not None:
            return False
        r = self._raft
        r.flush()
        log = r.log
        u = log.unstable
        return bool(
            r.msgs
            or u.entries
            or r.read_states
            or u.snapshot is not None
            or log.has_next_committed_ents()
            or r.lead != self._prev_soft.leader
            or r.role != self._prev_soft.role
            or self._hard_changed()
        )

    def _hard_changed(self) -> bool:
        r = self._raft
        p = self._prev_hard
        return r.term != p.term or r.vote != p.vote or r.log.committed != p.commit

    def ready(self) -> Ready:
        """The work to carry out now; call ``advance(rd)`` when it is done."""
        if self._outstanding is not None:
            raise RaftError("ready() called before advance() of the previous Ready")
        r = self._raft
        r.flush()
        # Reads arriving from now on need a heartbeat round sent after them.
        r.close_read_round()
        log = r.log
        u = log.unstable

        soft = None
        if r.lead != self._prev_soft.leader or r.role != self._prev_soft.role:
            soft = SoftState(r.lead, r.role)
            self._prev_soft = soft
        hard = None
        must_sync = False
        if self._hard_changed():
            prev = self._prev_hard
            hard = HardState(r.term, r.vote, log.committed)
            must_sync = hard.term != prev.term or hard.vote != prev.vote
            self._prev_hard = hard
        entries = tuple(u.entries)
        snapshot = u.snapshot if u.snapshot is not None else EMPTY_SNAPSHOT
        if entries or u.snapshot is not None:
            must_sync = True
        committed = tuple(log.next_committed_ents())
        msgs = tuple(r.msgs)
        r.msgs.clear()
        reads = tuple(r.read_states)
        r.read_states.clear()
        rd = Ready(
            soft_state=soft,
            hard_state=hard,
            read_states=reads,
            entries=entries,
            snapshot=snapshot,
            committed_entries=committed,
            messages=msgs,
            must_sync=must_sync,
        )
        self._outstanding = rd
        return rd

    def advance(self, rd: Ready) -> None:
        """``rd`` has been carried out: persisted, sent and applied."""
        if rd is not self._outstanding:
            raise RaftError("advance() must be given the Ready last returned by ready()")
        self._outstanding = None
        r = self._raft
        log = r.log
        snap_index = rd.snapshot.metadata.index
        if snap_index:
            log.stable_snap_to(snap_index)
            if snap_index > log.applied:
                log.applied = snap_index  # the snapshot is the applied state
        if rd.entries:
            last = rd.entries[-1]
            if log.stable_to(last.index, last.term):
                r.on_persisted(last.index)
        if rd.committed_entries:
            log.applied_to(rd.committed_entries[-1].index)
            r.reduce_uncommitted_size(rd.committed_entries)

    def status(self) -> Status:
        return self._raft.status()
