"""Invariant checks over everything the simulated cluster does, over all time.

The checker sees the cluster only through events the driver reports (a leader observed, entries
made durable, an entry applied, a write acknowledged, a read answered). It keeps the global truth
each Raft safety property is stated against (Raft paper §5.2-§5.4, thesis §6.4) and raises
``InvariantViolation`` the first time one fails, naming the invariant, the simulated time and the
members involved. Every check increments a counter so tests can prove the checks actually ran.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Container

from kvorum.raft.types import ConfState, Entry, EntryType

ELECTION_SAFETY = "election safety"
LOG_MATCHING = "log matching"
LEADER_COMPLETENESS = "leader completeness"
LEADER_COMMIT_RULE = "leader commit rule"
STATE_MACHINE_SAFETY = "state machine safety"
READ_INDEX_SAFETY = "read-index safety"
DURABILITY = "durability"
LIVENESS = "liveness"
READY_CONTRACT = "ready contract"

ALL_CHECKS = (
    ELECTION_SAFETY,
    LOG_MATCHING,
    LEADER_COMPLETENESS,
    LEADER_COMMIT_RULE,
    STATE_MACHINE_SAFETY,
    READ_INDEX_SAFETY,
    DURABILITY,
    LIVENESS,
    READY_CONTRACT,
)


class InvariantViolation(Exception):
    """A safety or liveness property failed; the message names it, the time and the members."""

    def __init__(self, invariant: str, time: int, nodes: tuple[int, ...], detail: str) -> None:
        self.invariant = invariant
        self.time = time
        self.nodes = nodes
        self.detail = detail
        members = ",".join(str(n) for n in nodes)
        super().__init__(f"{invariant} violated at t={time} on node(s) {members}: {detail}")


class Checker:
    """The global history every member's behaviour is checked against."""

    def __init__(self) -> None:
        self.time = 0
        """Simulated time of the event being reported; the driver keeps it current."""
        self.checks: Counter[str] = Counter()
        self._leader_of_term: dict[int, int] = {}
        self._max_term = 0
        # Log matching (§5.3): an entry is identified by (index, term) — only the leader of
        # `term` creates it, once. Both its content and its predecessor's term are then fixed.
        self._entry_of: dict[tuple[int, int], tuple[EntryType, bytes]] = {}
        self._prev_term_of: dict[tuple[int, int], int] = {}
        # Committed entries: index -> (entry term, highest term seen when the commit was seen).
        self._committed: dict[int, tuple[int, int]] = {}
        # State machine safety (§5.4.3): the entry applied at each index, and the state-machine
        # chain hash after it, the same on every member.
        self._applied: dict[int, tuple[int, EntryType, bytes]] = {}
        self._chain_at: dict[int, bytes] = {}
        self._conf_at: dict[int, ConfState] = {}
        self._acked: dict[bytes, int] = {}
        self.max_acked_index = 0

    # --- elections --------------------------------------------------------------------------

    def observe_term(self, term: int) -> None:
        """Remember the highest term any member has reached (bounds when a commit happened)."""
        if term > self._max_term:
            self._max_term = term

    def leader(self, node_id: int, term: int) -> None:
        """Election safety (§5.2): at most one leader per term, over the whole run."""
        self.checks[ELECTION_SAFETY] += 1
        self.observe_term(term)
        holder = self._leader_of_term.setdefault(term, node_id)
        if holder != node_id:
            raise InvariantViolation(
                ELECTION_SAFETY,
                self.time,
                (holder, node_id),
                f"two leaders in term {term}: {holder} and {node_id}",
            )

    def leader_log(
        self, node_id: int, term: int, first_index: int, term_at: Callable[[int], int | None]
    ) -> None:
        """Leader completeness (§5.4): a new leader's log holds every entry committed earlier.

        ``term_at(i)`` is the term of the leader's entry at ``i`` (None past its log);
        indexes below ``first_index`` are covered by its snapshot and are checked through the
        snapshot's chain hash instead.
        """
        self.checks[LEADER_COMPLETENESS] += 1
        for index, (entry_term, seen_in_term) in self._committed.items():
            # The commit happened in a term <= seen_in_term; only leaders of later terms are
            # bound to hold it.
            if seen_in_term >= term or index < first_index:
                continue
            have = term_at(index)
            if have != entry_term:
                raise InvariantViolation(
                    LEADER_COMPLETENESS,
                    self.time,
                    (node_id,),
                    f"leader of term {term} lacks committed entry {index} (term {entry_term});"
                    f" its log has term {have} there",
                )

    def leader_commit(
        self, node_id: int, term: int, commit_index: int, entry_term: int | None
    ) -> None:
        """§5.4.2: a leader advances its commit index only onto an entry of its own term.

        Entries of earlier terms become committed only indirectly, behind one of the current
        term; counting replicas of an old entry is unsafe (the paper's figure 8).
        """
        self.checks[LEADER_COMMIT_RULE] += 1
        if entry_term != term:
            raise InvariantViolation(
                LEADER_COMMIT_RULE,
                self.time,
                (node_id,),
                f"leader of term {term} advanced commit to {commit_index}, an entry of term"
                f" {entry_term}",
            )

    # --- the replicated log -----------------------------------------------------------------

    def persisted(
        self, node_id: int, prev_index: int, prev_term: int, entries: tuple[Entry, ...]
    ) -> None:
        """Log matching (§5.3) over every log as it is made durable.

        Same (index, term) means the same entry, and its predecessor has the same term; by
        induction two logs agreeing on an entry agree on the whole prefix before it.
        """
        self.checks[LOG_MATCHING] += 1
        entry_of = self._entry_of
        prev_term_of = self._prev_term_of
        for e in entries:
            if e.index != prev_index + 1:
                raise InvariantViolation(
                    LOG_MATCHING,
                    self.time,
                    (node_id,),
                    f"persisted entry {e.index} does not follow index {prev_index}",
                )
            key = (e.index, e.term)
            body = (e.type, e.data)
            known = entry_of.setdefault(key, body)
            if known != body:
                raise InvariantViolation(
                    LOG_MATCHING,
                    self.time,
                    (node_id,),
                    f"entry {e.index} term {e.term} differs from the one another member holds",
                )
            known_prev = prev_term_of.setdefault(key, prev_term)
            if known_prev != prev_term:
                raise InvariantViolation(
                    LOG_MATCHING,
                    self.time,
                    (node_id,),
                    f"entry {e.index} term {e.term} follows term {prev_term} here but term"
                    f" {known_prev} elsewhere",
                )
            prev_index, prev_term = e.index, e.term

    # --- the state machine ------------------------------------------------------------------

    def applied(self, node_id: int, entry: Entry, chain: bytes) -> None:
        """State machine safety (§5.4.3): every member applies the same entry at an index."""
        self.checks[STATE_MACHINE_SAFETY] += 1
        body = (entry.term, entry.type, entry.data)
        known = self._applied.setdefault(entry.index, body)
        if known != body:
            raise InvariantViolation(
                STATE_MACHINE_SAFETY,
                self.time,
                (node_id,),
                f"applied entry {entry.index} (term {entry.term}, {entry.data!r}) but another"
                f" member applied (term {known[0]}, {known[2]!r}) there",
            )
        known_chain = self._chain_at.setdefault(entry.index, chain)
        if known_chain != chain:
            raise InvariantViolation(
                STATE_MACHINE_SAFETY,
                self.time,
                (node_id,),
                f"state after applying {entry.index} differs from another member's",
            )
        if entry.index not in self._committed:
            self._committed[entry.index] = (entry.term, self._max_term)

    def snapshot_restored(self, node_id: int, index: int, chain: bytes) -> None:
        """A restored snapshot must equal the state some member reached by applying entries."""
        self.checks[STATE_MACHINE_SAFETY] += 1
        known = self._chain_at.get(index)
        if known != chain:
            what = "no member applied that index" if known is None else "the state differs"
            raise InvariantViolation(
                STATE_MACHINE_SAFETY,
                self.time,
                (node_id,),
                f"restored snapshot at {index}, but {what}",
            )

    def conf_applied(self, node_id: int, index: int, conf_state: ConfState) -> None:
        """Every member derives the same configuration from the same conf-change entry."""
        self.checks[STATE_MACHINE_SAFETY] += 1
        known = self._conf_at.setdefault(index, conf_state)
        if known != conf_state:
            raise InvariantViolation(
                STATE_MACHINE_SAFETY,
                self.time,
                (node_id,),
                f"conf change {index} gave {conf_state} here and {known} elsewhere",
            )

    # --- clients ----------------------------------------------------------------------------

    def acknowledged(self, node_id: int, write_id: bytes, index: int) -> None:
        """A write applied at the member that proposed it counts as acknowledged to a client."""
        self._acked.setdefault(write_id, index)
        if index > self.max_acked_index:
            self.max_acked_index = index

    def read_issued(self) -> int:
        """The index a read issued now must reach: the last acknowledged write's index."""
        return self.max_acked_index

    def read_answered(self, node_id: int, ctx: bytes, read_index: int, required: int) -> None:
        """ReadIndex safety (thesis §6.4): a read sees all writes acknowledged before it began."""
        self.checks[READ_INDEX_SAFETY] += 1
        if read_index < required:
            raise InvariantViolation(
                READ_INDEX_SAFETY,
                self.time,
                (node_id,),
                f"read {ctx!r} answered at index {read_index}, but a write acknowledged before"
                f" it was issued sits at index {required}",
            )

    def durable(self, node_id: int, applied_index: int, writes: Container[bytes]) -> None:
        """Durability: after crashes and heal, every acknowledged write is in a voter's state."""
        self.checks[DURABILITY] += 1
        for write_id, index in self._acked.items():
            if index > applied_index or write_id not in writes:
                raise InvariantViolation(
                    DURABILITY,
                    self.time,
                    (node_id,),
                    f"acknowledged write {write_id!r} (index {index}) is missing; the member"
                    f" applied up to {applied_index}",
                )

    def live(self, ok: bool, nodes: tuple[int, ...], detail: str) -> None:
        """Liveness after heal: the driver reports whether the cluster made progress in time."""
        self.checks[LIVENESS] += 1
        if not ok:
            raise InvariantViolation(LIVENESS, self.time, nodes, detail)

    def vote_sent(
        self, node_id: int, candidate: int, term: int, durable_term: int, vote: int
    ) -> None:
        """§5.2 with the Ready contract: a granted vote is durable before the reply leaves.

        A durable hard state of a later term also protects it: one Ready may carry a vote of an
        earlier term that a newer vote superseded, and no member votes in a term it has passed.
        """
        self.contract(
            durable_term > term or (durable_term == term and vote == candidate),
            node_id,
            f"granted its vote in term {term} to {candidate} while its durable hard state says"
            f" term {durable_term} vote {vote}",
        )

    def append_acked(
        self, node_id: int, term: int, index: int, durable_term: int, durable_last_index: int
    ) -> None:
        """An APP_RESP that accepts entries up to ``index`` is sent only once they are durable.

        Checked while the member is still in the reply's term: within one term the leader never
        rewrites its own entries, so the durable log cannot have shrunk below what was accepted.
        An older-term reply may trail a truncation made for a newer leader in the same Ready.
        """
        self.contract(
            term != durable_term or index <= durable_last_index,
            node_id,
            f"acknowledged entries up to {index} but its durable log ends at {durable_last_index}",
        )

    def contract(self, ok: bool, node_id: int, detail: str) -> None:
        """A breach of the Ready contract (types.Ready) by the core is reported like a violation."""
        self.checks[READY_CONTRACT] += 1
        if not ok:
            raise InvariantViolation(READY_CONTRACT, self.time, (node_id,), detail)

    def ack_index(self, write_id: bytes) -> int | None:
        """Index at which ``write_id`` was acknowledged, if it was."""
        return self._acked.get(write_id)

    @property
    def acked_count(self) -> int:
        return len(self._acked)
