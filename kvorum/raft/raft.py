"""The Raft state machine (Raft paper §5, thesis §3-§6, §9.6).

Rules in one place:

* The role is a pair of functions: ``_step_fn`` handles the messages that are
  role-specific and ``_tick_fn`` advances time. ``_become_*`` swaps them.
* ``step`` first applies the term rules common to every role (§5.1: a higher term
  turns us into a follower, a lower one is ignored), with two exceptions: pre-vote
  traffic does not change terms (thesis §9.6) and a node that heard from a leader
  within the election timeout ignores (pre-)vote requests (leader lease, §6.2)
  unless the candidate was told to campaign by a leadership transfer (§3.10).
* Output is data only: messages go to ``msgs``, read answers to ``read_states``.
  Appends to followers are batched: proposals and commit advances only mark the
  leader dirty, and ``flush()`` (called when a Ready is built) sends one APP per
  follower covering everything new, within the size and in-flight limits.
* The leader counts its own log toward commitment only when ``on_persisted`` says
  the entries are on stable storage (thesis §10.2.1).
* The transport is expected to call ``report_snapshot`` for every SNAP sent; if no
  report comes within SNAPSHOT_TIMEOUTS election timeouts the send is presumed lost
  and the follower is probed again (which ships a fresh snapshot).
"""

from __future__ import annotations

import random
from collections.abc import Callable

from kvorum.raft import quorum
from kvorum.raft.config import Config
from kvorum.raft.log import RaftLog
from kvorum.raft.progress import Inflights, Progress
from kvorum.raft.read_only import ReadOnly
from kvorum.raft.types import (
    NONE,
    CompactedError,
    ConfChange,
    ConfChangeType,
    ConfState,
    Entry,
    EntryType,
    HardState,
    Logger,
    Message,
    MessageType,
    PeerStatus,
    ProgressState,
    ProposalDroppedError,
    RaftError,
    ReadState,
    Snapshot,
    SnapshotTemporarilyUnavailableError,
    StateRole,
    Status,
    Storage,
)
from kvorum.raft.util import payload_size, size_of

CAMPAIGN_TRANSFER = b"CampaignTransfer"
"""Vote context of a campaign started by TIMEOUT_NOW: bypasses the leader lease."""

SNAPSHOT_TIMEOUTS = 3
"""Election timeouts a leader waits for a snapshot report before sending again."""

MAX_PENDING_READS_BEFORE_COMMIT = 1 << 12
"""Reads a new leader queues until an entry of its term commits; more are dropped."""

_APP = MessageType.APP
_APP_RESP = MessageType.APP_RESP
_VOTE = MessageType.VOTE
_VOTE_RESP = MessageType.VOTE_RESP
_PRE_VOTE = MessageType.PRE_VOTE
_PRE_VOTE_RESP = MessageType.PRE_VOTE_RESP
_HEARTBEAT = MessageType.HEARTBEAT
_HEARTBEAT_RESP = MessageType.HEARTBEAT_RESP
_SNAP = MessageType.SNAP
_PROP = MessageType.PROP
_READ_INDEX = MessageType.READ_INDEX
_READ_INDEX_RESP = MessageType.READ_INDEX_RESP
_TRANSFER_LEADER = MessageType.TRANSFER_LEADER
_TIMEOUT_NOW = MessageType.TIMEOUT_NOW
_REPLICATE = ProgressState.REPLICATE
_PROBE = ProgressState.PROBE
_SNAPSHOT = ProgressState.SNAPSHOT
_LEADER = StateRole.LEADER
_FOLLOWER = StateRole.FOLLOWER
_CANDIDATE = StateRole.CANDIDATE
_PRE_CANDIDATE = StateRole.PRE_CANDIDATE
_NORMAL = EntryType.NORMAL
_CONF_CHANGE = EntryType.CONF_CHANGE


class Raft:
    """One node's Raft state; driven by ``RawNode``."""

    __slots__ = (
        "_bcast_pending",
        "_step_fn",
        "_tick_fn",
        "check_quorum",
        "disable_proposal_forwarding",
        "election_elapsed",
        "election_timeout",
        "heartbeat_elapsed",
        "heartbeat_timeout",
        "id",
        "lead",
        "lead_transferee",
        "learners",
        "log",
        "logger",
        "max_inflight_bytes",
        "max_inflight_msgs",
        "max_msg_size_bytes",
        "max_uncommitted_size_bytes",
        "msgs",
        "pending_conf_index",
        "pending_reads",
        "pre_vote",
        "prs",
        "randomized_election_timeout",
        "read_only",
        "read_states",
        "rng",
        "role",
        "term",
        "uncommitted_size_bytes",
        "vote",
        "voters",
        "votes",
    )

    def __init__(self, config: Config, storage: Storage, rng: random.Random, logger: Logger):
        self.id = config.id
        self.rng = rng
        self.logger = logger
        self.log = RaftLog(storage, config.max_committed_size_per_ready_bytes)
        self.max_msg_size_bytes = config.max_size_per_msg_bytes
        self.max_inflight_msgs = config.max_inflight_msgs
        self.max_inflight_bytes = config.max_inflight_bytes
        self.max_uncommitted_size_bytes = config.max_uncommitted_entries_size_bytes
        self.election_timeout = config.election_tick
        self.heartbeat_timeout = config.heartbeat_tick
        self.check_quorum = config.check_quorum
        self.pre_vote = config.pre_vote
        self.disable_proposal_forwarding = config.disable_proposal_forwarding

        self.term = 0
        self.vote = NONE
        self.lead = NONE
        self.role = _FOLLOWER
        self.msgs: list[Message] = []
        self.read_states: list[ReadState] = []
        self.votes: dict[int, bool] = {}
        self.prs: dict[int, Progress] = {}
        self.voters: tuple[int, ...] = ()
        self.learners: tuple[int, ...] = ()
        self.lead_transferee = NONE
        self.pending_conf_index = 0
        self.uncommitted_size_bytes = 0
        self.read_only = ReadOnly()
        self.pending_reads: list[tuple[bytes, int]] = []
        self.election_elapsed = 0
        self.heartbeat_elapsed = 0
        self.randomized_election_timeout = config.election_tick
        self._bcast_pending = False
        self._step_fn: Callable[[Message], None] = self._step_follower
        self._tick_fn: Callable[[], None] = self._tick_election

        hs, cs = storage.initial_state()
        self._set_conf_state(cs)
        if not hs.is_empty():
            self._load_hard_state(hs)
        if config.applied > 0:
            self.log.applied_to(config.applied)
        self._become_follower(self.term, NONE)
        logger.info(
            "raft %d: starting at term %d, commit %d, applied %d, last index %d, voters %s",
            self.id,
            self.term,
            self.log.committed,
            self.log.applied,
            self.log.last_index(),
            self.voters,
        )

    # --- state ----------------------------------------------------------------------

    def _load_hard_state(self, hs: HardState) -> None:
        if hs.commit < self.log.committed or hs.commit > self.log.last_index():
            raise RaftError(
                f"hard state commit {hs.commit} outside [{self.log.committed}, "
                f"{self.log.last_index()}]"
            )
        self.log.committed = hs.commit
        self.term = hs.term
        self.vote = hs.vote

    def hard_state(self) -> HardState:
        return HardState(self.term, self.vote, self.log.committed)

    def conf_state(self) -> ConfState:
        return ConfState(voters=self.voters, learners=self.learners)

    def _new_progress(self, next_index: int, is_learner: bool, match: int = 0) -> Progress:
        return Progress(
            next_index,
            Inflights(self.max_inflight_msgs, self.max_inflight_bytes),
            match=match,
            is_learner=is_learner,
        )

    def _set_conf_state(self, cs: ConfState) -> None:
        """Replace the membership (at start, or from a restored snapshot)."""
        if set(cs.voters) & set(cs.learners):
            raise RaftError(f"conf state lists nodes as both voter and learner: {cs}")
        self.voters = tuple(sorted(cs.voters))
        self.learners = tuple(sorted(cs.learners))
        nxt = self.log.last_index() + 1
        self.prs = {v: self._new_progress(nxt, False) for v in self.voters}
        for lr in self.learners:
            self.prs[lr] = self._new_progress(nxt, True)

    def _promotable(self) -> bool:
        """Only a voter without a snapshot still to persist may campaign."""
        pr = self.prs.get(self.id)
        return pr is not None and not pr.is_learner and self.log.unstable.snapshot is None

    def _reset_randomized_election_timeout(self) -> None:
        # §5.2: a randomized timeout in [election_timeout, 2 * election_timeout) makes
        # split votes rare; randomness comes from the rng passed in, so runs replay.
        self.randomized_election_timeout = self.election_timeout + self.rng.randrange(
            self.election_timeout
        )

    def _reset(self, term: int) -> None:
        if self.term != term:
            self.term = term
            self.vote = NONE
        self.lead = NONE
        self.election_elapsed = 0
        self.heartbeat_elapsed = 0
        self._reset_randomized_election_timeout()
        self.lead_transferee = NONE
        self.votes = {}
        last = self.log.last_index()
        for nid, pr in list(self.prs.items()):
            self.prs[nid] = self._new_progress(
                last + 1, pr.is_learner, match=last if nid == self.id else 0
            )
        self.pending_conf_index = 0
        self.uncommitted_size_bytes = 0
        self.read_only = ReadOnly()
        self.pending_reads = []
        self._bcast_pending = False

    def _become_follower(self, term: int, lead: int) -> None:
        self._step_fn = self._step_follower
        self._reset(term)
        self._tick_fn = self._tick_election
        self.lead = lead
        self.role = _FOLLOWER
        self.logger.debug("raft %d: became follower at term %d (leader %d)", self.id, term, lead)

    def _become_pre_candidate(self) -> None:
        if self.role == _LEADER:
            raise RaftError("invalid transition leader -> pre-candidate")
        # Pre-vote (thesis §9.6): neither the term nor the vote changes, so a node that
        # cannot win does not disrupt the cluster by bumping terms.
        self._step_fn = self._step_candidate
        self.votes = {}
        self._tick_fn = self._tick_election
        self.lead = NONE
        self.role = _PRE_CANDIDATE
        self.logger.debug("raft %d: became pre-candidate at term %d", self.id, self.term)

    def _become_candidate(self) -> None:
        if self.role == _LEADER:
            raise RaftError("invalid transition leader -> candidate")
        self._step_fn = self._step_candidate
        self._reset(self.term + 1)
        self._tick_fn = self._tick_election
        self.vote = self.id
        self.role = _CANDIDATE
        self.logger.debug("raft %d: became candidate at term %d", self.id, self.term)

    def _become_leader(self) -> None:
        if self.role == _FOLLOWER:
            raise RaftError("invalid transition follower -> leader")
        self._step_fn = self._step_leader
        self._reset(self.term)
        self._tick_fn = self._tick_heartbeat
        self.lead = self.id
        self.role = _LEADER
        pr = self.prs[self.id]
        pr.become_replicate()
        pr.recent_active = True
        # Conservatively treat any unapplied tail as possibly holding a conf change.
        last = self.log.last_index()
        self.pending_conf_index = last
        # §5.4.2 / thesis §3.6.2: a leader commits entries of earlier terms only by
        # committing one of its own, so it appends an empty entry at once.
        self.log.append((Entry(self.term, last + 1),))
        self._bcast_pending = True
        self.logger.info("raft %d: became leader at term %d", self.id, self.term)

    # --- time -------------------------------------------------------------------------

    def tick(self) -> None:
        self._tick_fn()

    def _tick_election(self) -> None:
        self.election_elapsed += 1
        if self.election_elapsed >= self.randomized_election_timeout and self._promotable():
            self.election_elapsed = 0
            self.hup(transfer=False)

    def _tick_heartbeat(self) -> None:
        self.heartbeat_elapsed += 1
        self.election_elapsed += 1
        if self.election_elapsed >= self.election_timeout:
            self.election_elapsed = 0
            if self.check_quorum:
                self._check_quorum()
            if self.role == _LEADER:
                self._expire_snapshots()
            # Thesis §3.10: a transfer that did not finish within an election timeout
            # is aborted so the leader accepts proposals again.
            if self.role == _LEADER and self.lead_transferee != NONE:
                self.logger.info(
                    "raft %d: leadership transfer to %d timed out", self.id, self.lead_transferee
                )
                self.lead_transferee = NONE
        if self.role != _LEADER:
            return
        if self.heartbeat_elapsed >= self.heartbeat_timeout:
            self.heartbeat_elapsed = 0
            self._bcast_heartbeat(self.read_only.last_pending_ctx())

    def _expire_snapshots(self) -> None:
        """Presume lost a snapshot send not reported for SNAPSHOT_TIMEOUTS election timeouts.

        The transport should call ``report_snapshot``; if the report itself is lost
        (or the message was dropped silently) the follower would wait forever, so
        after a while the leader probes again, which sends a fresh snapshot.
        """
        for nid, pr in self.prs.items():
            if pr.state == _SNAPSHOT:
                pr.snapshot_timeouts += 1
                if pr.snapshot_timeouts >= SNAPSHOT_TIMEOUTS:
                    self.logger.info(
                        "raft %d: snapshot to %d not reported; presumed lost", self.id, nid
                    )
                    pr.pending_snapshot = 0
                    pr.become_probe()
                    self._bcast_pending = True

    def _check_quorum(self) -> None:
        """§6.2: a leader that did not hear from a quorum in an election timeout steps down."""
        active = [self.id]
        for nid, pr in self.prs.items():
            if nid != self.id:
                if pr.recent_active:
                    active.append(nid)
                pr.recent_active = False
        if not quorum.has_quorum(self.voters, active):
            self.logger.warning(
                "raft %d: stepping down at term %d: no quorum active", self.id, self.term
            )
            self._become_follower(self.term, NONE)

    # --- elections ------------------------------------------------------------------

    def hup(self, transfer: bool) -> None:
        """Start an election: pre-vote first unless this is a leadership transfer."""
        if self.role == _LEADER:
            return
        if not self._promotable():
            self.logger.warning("raft %d: cannot campaign: not a voter", self.id)
            return
        if self.log.has_unapplied_conf_change():
            self.logger.warning(
                "raft %d: cannot campaign: committed conf change not yet applied", self.id
            )
            return
        if transfer:
            self._campaign(pre=False, transfer=True)
        else:
            self._campaign(pre=self.pre_vote, transfer=False)

    def _campaign(self, pre: bool, transfer: bool) -> None:
        if pre:
            self._become_pre_candidate()
            req_type = _PRE_VOTE
            term = self.term + 1
        else:
            self._become_candidate()
            req_type = _VOTE
            term = self.term
        if self._poll(self.id, True) == quorum.VoteResult.WON:
            # A single voter wins at once.
            if pre:
                self._campaign(pre=False, transfer=transfer)
            else:
                self._become_leader()
            return
        last = self.log.last_index()
        last_term = self.log.last_term()
        ctx = CAMPAIGN_TRANSFER if transfer else b""
        for v in self.voters:
            if v != self.id:
                self.msgs.append(
                    Message(
                        req_type,
                        to=v,
                        frm=self.id,
                        term=term,
                        index=last,
                        log_term=last_term,
                        context=ctx,
                    )
                )

    def _poll(self, nid: int, granted: bool) -> quorum.VoteResult:
        self.votes.setdefault(nid, granted)
        return quorum.vote_result(self.voters, self.votes)

    def _handle_vote_request(self, m: Message) -> None:
        resp_type = _VOTE_RESP if m.type == _VOTE else _PRE_VOTE_RESP
        # §5.2: at most one vote per term (repeat a vote already given); a pre-vote
        # for a future term commits us to nothing, so it may always be granted.
        can_vote = (
            self.vote == m.frm
            or (self.vote == NONE and self.lead == NONE)
            or (m.type == _PRE_VOTE and m.term > self.term)
        )
        # §5.4.1: grant only to a candidate whose log is at least as up to date.
        if can_vote and self.log.is_up_to_date(m.index, m.log_term):
            # The response carries the candidate's term so a pre-candidate recognises it.
            self.msgs.append(Message(resp_type, to=m.frm, frm=self.id, term=m.term))
            if m.type == _VOTE:
                # The vote is part of the HardState of the same Ready, persisted
                # before this response may be sent.
                self.election_elapsed = 0
                self.vote = m.frm
        else:
            self.msgs.append(Message(resp_type, to=m.frm, frm=self.id, term=self.term, reject=True))

    # --- the step function ----------------------------------------------------------

    def step(self, m: Message) -> None:
        """Handle one message from a peer (or a forwarded local request)."""
        t = m.type
        if m.term == 0:
            pass  # PROP and READ_INDEX travel without a term
        elif m.term > self.term:
            if t in (_VOTE, _PRE_VOTE):
                force = m.context == CAMPAIGN_TRANSFER
                in_lease = (
                    self.check_quorum
                    and self.lead != NONE
                    and self.election_elapsed < self.election_timeout
                )
                if in_lease and not force:
                    # §6.2 / thesis §4.2.3: we heard from a live leader recently, so a
                    # (pre-)candidate is probably a disruptive, partitioned node.
                    self.logger.debug(
                        "raft %d: ignoring %s from %d at term %d: leader lease",
                        self.id,
                        t.name,
                        m.frm,
                        m.term,
                    )
                    return
            if t == _PRE_VOTE:
                pass  # never change term because of a pre-vote request
            elif t == _PRE_VOTE_RESP and not m.reject:
                pass  # the term is bumped when the pre-vote wins
            elif t in (_APP, _HEARTBEAT, _SNAP):
                self._become_follower(m.term, m.frm)
            else:
                self._become_follower(m.term, NONE)
        elif m.term < self.term:
            if (self.check_quorum or self.pre_vote) and (t in (_HEARTBEAT, _APP)):
                # A stale leader that nobody answers would never learn of the newer
                # term (its pre-votes and lease keep it from being told otherwise):
                # tell it, so it steps down.
                self.msgs.append(Message(_APP_RESP, to=m.frm, frm=self.id, term=self.term))
            elif t == _PRE_VOTE:
                # Tell a stale pre-candidate our term so it can catch up.
                self.msgs.append(
                    Message(_PRE_VOTE_RESP, to=m.frm, frm=self.id, term=self.term, reject=True)
                )
            return
        if t in (_VOTE, _PRE_VOTE):
            self._handle_vote_request(m)
            return
        self._step_fn(m)

    def _step_follower(self, m: Message) -> None:
        t = m.type
        if t == _APP:
            self.election_elapsed = 0
            self.lead = m.frm
            self._handle_append(m)
        elif t == _HEARTBEAT:
            self.election_elapsed = 0
            self.lead = m.frm
            self._handle_heartbeat(m)
        elif t == _SNAP:
            self.election_elapsed = 0
            self.lead = m.frm
            self._handle_snapshot(m)
        elif t == _PROP:
            if self.lead == NONE or self.disable_proposal_forwarding:
                self.logger.debug("raft %d: dropping forwarded proposal", self.id)
                return
            self.msgs.append(Message(_PROP, to=self.lead, frm=m.frm or self.id, entries=m.entries))
        elif t == _TRANSFER_LEADER:
            if self.lead == NONE:
                return
            # Forwarded as etcd does: ``frm`` names the transferee.
            self.msgs.append(Message(_TRANSFER_LEADER, to=self.lead, frm=m.frm, term=self.term))
        elif t == _TIMEOUT_NOW:
            # Thesis §3.10: the leader chose us; campaign now, skipping pre-vote.
            self.logger.info("raft %d: TIMEOUT_NOW from %d: campaigning", self.id, m.frm)
            self.hup(transfer=True)
        elif t == _READ_INDEX:
            if self.lead == NONE:
                self.logger.debug("raft %d: no leader; dropping read index", self.id)
                return
            self.msgs.append(Message(_READ_INDEX, to=self.lead, frm=m.frm, context=m.context))
        elif t == _READ_INDEX_RESP:
            self.read_states.append(ReadState(m.index, m.context))

    def _step_candidate(self, m: Message) -> None:
        t = m.type
        my_resp = _PRE_VOTE_RESP if self.role == _PRE_CANDIDATE else _VOTE_RESP
        if t == _APP:
            self._become_follower(m.term, m.frm)
            self._handle_append(m)
        elif t == _HEARTBEAT:
            self._become_follower(m.term, m.frm)
            self._handle_heartbeat(m)
        elif t == _SNAP:
            self._become_follower(m.term, m.frm)
            self._handle_snapshot(m)
        elif t == my_resp:
            res = self._poll(m.frm, not m.reject)
            if res == quorum.VoteResult.WON:
                if self.role == _PRE_CANDIDATE:
                    self._campaign(pre=False, transfer=False)
                else:
                    self._become_leader()
            elif res == quorum.VoteResult.LOST:
                self._become_follower(self.term, NONE)
        # PROP, READ_INDEX, TRANSFER_LEADER: no leader to serve them; TIMEOUT_NOW: stale.

    def _step_leader(self, m: Message) -> None:
        t = m.type
        if t == _PROP:
            self._leader_forwarded_proposal(m)
            return
        if t == _READ_INDEX:
            self._leader_read_index(m.context, m.frm)
            return
        if t == _TRANSFER_LEADER:
            self._leader_transfer(m.frm)
            return
        pr = self.prs.get(m.frm)
        if pr is None:
            return  # a response from a node no longer in the configuration
        if t == _APP_RESP:
            self._leader_append_response(m, pr)
        elif t == _HEARTBEAT_RESP:
            pr.recent_active = True
            pr.probe_sent = False
            if pr.state == _REPLICATE and pr.inflights.full():
                pr.inflights.free_first_one()
            if pr.match < self.log.last_index() or pr.sent_commit < self.log.committed:
                self._maybe_send_append(m.frm, True)
            if m.context:
                self._leader_read_ack(m.frm, m.context)

    # --- follower side of replication -------------------------------------------------

    def _handle_append(self, m: Message) -> None:
        log = self.log
        if m.index < log.committed:
            # Everything up to our commit index matches the leader (§5.4): just say so.
            self.msgs.append(
                Message(_APP_RESP, to=m.frm, frm=self.id, term=self.term, index=log.committed)
            )
            return
        last_new = log.maybe_append(m.index, m.log_term, m.commit, m.entries)
        if last_new is not None:
            self.msgs.append(
                Message(_APP_RESP, to=m.frm, frm=self.id, term=self.term, index=last_new)
            )
            return
        # §5.3 consistency check failed. Fast back-off: point the leader at the last
        # index whose term is <= the term it probed with; entries after cannot match.
        hint_index = min(m.index, log.last_index())
        hint_index, hint_term = log.find_conflict_by_term(hint_index, m.log_term)
        self.msgs.append(
            Message(
                _APP_RESP,
                to=m.frm,
                frm=self.id,
                term=self.term,
                index=m.index,
                reject=True,
                reject_hint=hint_index,
                log_term=hint_term,
            )
        )

    def _handle_heartbeat(self, m: Message) -> None:
        # The leader sends min(match, commit): safe to commit without a log check.
        self.log.commit_to(m.commit)
        self.msgs.append(
            Message(_HEARTBEAT_RESP, to=m.frm, frm=self.id, term=self.term, context=m.context)
        )

    def _handle_snapshot(self, m: Message) -> None:
        snap = m.snapshot
        if snap is None or snap.is_empty():
            return
        index = self.log.last_index() if self._restore(snap) else self.log.committed
        self.msgs.append(Message(_APP_RESP, to=m.frm, frm=self.id, term=self.term, index=index))

    def _restore(self, snap: Snapshot) -> bool:
        md = snap.metadata
        if md.index <= self.log.committed:
            return False
        cs = md.conf_state
        if self.id not in cs.voters and self.id not in cs.learners:
            # A node removed and added back under the same id may be sent a snapshot
            # taken while it was out; it learns its membership again from the log
            # entries after it. Until then it is not promotable, so this is harmless.
            self.logger.info(
                "raft %d: snapshot at %d does not list this node; accepting", self.id, md.index
            )
        if self.log.match_term(md.index, md.term):
            # We already have the entries; just learn they are committed.
            self.log.commit_to(md.index)
            return False
        self.log.restore(snap)
        self._set_conf_state(cs)
        self.logger.info("raft %d: restored snapshot at %d term %d", self.id, md.index, md.term)
        return True

    # --- leader side of replication --------------------------------------------------

    def flush(self) -> None:
        """Send the batched appends (new entries, new commit index) to every follower."""
        if not self._bcast_pending:
            return
        self._bcast_pending = False
        if self.role != _LEADER:
            return
        committed = self.log.committed
        send = self._maybe_send_append
        for nid, pr in self.prs.items():
            if nid == self.id:
                continue
            sent = False
            while send(nid, False):
                sent = True
                if pr.state != _REPLICATE:
                    break
            if not sent and pr.sent_commit < committed:
                send(nid, True)

    def _maybe_send_append(self, to: int, send_if_empty: bool) -> bool:
        """Send the next APP to ``to`` if its progress allows; True if a message went out."""
        pr = self.prs[to]
        if pr.is_paused():
            return False
        log = self.log
        prev = pr.next - 1
        last = log.last_index()
        try:
            prev_term = log.term(prev)
            ents = log.slice(pr.next, last + 1, self.max_msg_size_bytes) if pr.next <= last else []
        except CompactedError:
            return self._maybe_send_snapshot(to, pr)
        if not ents and not send_if_empty:
            return False
        if ents:
            if pr.state == _REPLICATE:
                # Pipelining: assume success and move on; a rejection rewinds next.
                last_sent = ents[-1].index
                pr.next = last_sent + 1
                pr.inflights.add(last_sent, size_of(ents) if self.max_inflight_bytes else 0)
            elif pr.state == _PROBE:
                pr.probe_sent = True
        committed = log.committed
        pr.sent_commit = committed
        self.msgs.append(
            Message(
                _APP,
                to=to,
                frm=self.id,
                term=self.term,
                log_term=prev_term,
                index=prev,
                entries=tuple(ents),
                commit=committed,
            )
        )
        return True

    def _maybe_send_snapshot(self, to: int, pr: Progress) -> bool:
        if not pr.recent_active:
            # Do not ship a snapshot to a node we have not heard from.
            return False
        try:
            snap = self.log.snapshot()
        except SnapshotTemporarilyUnavailableError:
            self.logger.debug("raft %d: snapshot for %d temporarily unavailable", self.id, to)
            return False
        if snap.is_empty():
            raise RaftError("entries are compacted but the storage has no snapshot")
        pr.become_snapshot(snap.metadata.index)
        self.logger.info("raft %d: sending snapshot at %d to %d", self.id, snap.metadata.index, to)
        self.msgs.append(Message(_SNAP, to=to, frm=self.id, term=self.term, snapshot=snap))
        return True

    def _bcast_heartbeat(self, ctx: bytes) -> None:
        committed = self.log.committed
        for nid, pr in self.prs.items():
            if nid == self.id:
                continue
            # A follower may not have the leader's committed entries yet: only tell it
            # a commit index its log is known to contain.
            self.msgs.append(
                Message(
                    _HEARTBEAT,
                    to=nid,
                    frm=self.id,
                    term=self.term,
                    commit=min(pr.match, committed),
                    context=ctx,
                )
            )

    def _leader_append_response(self, m: Message, pr: Progress) -> None:
        pr.recent_active = True
        if m.reject:
            next_probe = m.reject_hint
            if m.log_term > 0:
                next_probe, _ = self.log.find_conflict_by_term(m.reject_hint, m.log_term)
            if pr.maybe_decr_to(m.index, next_probe):
                if pr.state == _REPLICATE:
                    pr.become_probe()
                self._maybe_send_append(m.frm, True)
            return
        old_paused = pr.is_paused()
        if not pr.maybe_update(m.index):
            return
        if pr.state == _PROBE:
            pr.become_replicate()
        elif pr.state == _SNAPSHOT:
            if pr.match + 1 >= self.log.first_index():
                # The follower caught up through the snapshot (or without it).
                pr.become_probe()
                pr.become_replicate()
            elif pr.match >= pr.pending_snapshot:
                # It has what the snapshot held yet the log moved past it (compacted
                # again): probe, which ships a fresh snapshot.
                pr.become_probe()
        elif pr.state == _REPLICATE:
            pr.inflights.free_le(m.index)
        if self._maybe_commit():
            self._on_commit_advanced()
        elif old_paused:
            self._maybe_send_append(m.frm, True)
        self._bcast_pending = True  # stream whatever else is ready in the next flush
        if m.frm == self.lead_transferee and pr.match == self.log.last_index():
            self.msgs.append(Message(_TIMEOUT_NOW, to=m.frm, frm=self.id, term=self.term))

    def _maybe_commit(self) -> bool:
        """Advance commit to the quorum match index if it is of the current term (§5.4.2)."""
        prs = self.prs
        mci = quorum.committed_index([prs[v].match for v in self.voters])
        return self.log.maybe_commit(mci, self.term)

    def _on_commit_advanced(self) -> None:
        self._bcast_pending = True  # followers learn the new commit index in the next flush
        if self.pending_reads and self._committed_in_current_term():
            pending, self.pending_reads = self.pending_reads, []
            for ctx, frm in pending:
                self._leader_read_index(ctx, frm)

    def on_persisted(self, index: int) -> None:
        """The local log up to ``index`` is durable: the leader may now count itself."""
        if self.role != _LEADER:
            return
        pr = self.prs.get(self.id)
        if pr is not None and pr.maybe_update(index) and self._maybe_commit():
            self._on_commit_advanced()

    def _committed_in_current_term(self) -> bool:
        return self.log.term_or_zero(self.log.committed) == self.term

    # --- proposals ----------------------------------------------------------------------

    def propose(self, data: bytes, etype: EntryType = _NORMAL) -> None:
        """Append a proposal (leader) or forward it (follower); raises ProposalDroppedError."""
        role = self.role
        if role == _LEADER:
            self._leader_check_proposal(etype, len(data))
            log = self.log
            index = log.last_index() + 1
            # Invariant: the leader's unstable tail ends at last_index, so append in place.
            log.unstable.entries.append(Entry(self.term, index, etype, data))
            if etype == _CONF_CHANGE:
                self.pending_conf_index = index
            self._bcast_pending = True
            return
        if role == _FOLLOWER:
            if self.lead == NONE:
                raise ProposalDroppedError("no leader: proposal dropped (election in progress?)")
            if self.disable_proposal_forwarding:
                raise ProposalDroppedError(
                    f"not the leader (leader is {self.lead}) and proposal forwarding is disabled"
                )
            self.msgs.append(
                Message(_PROP, to=self.lead, frm=self.id, entries=(Entry(0, 0, etype, data),))
            )
            return
        raise ProposalDroppedError(f"no leader: node {self.id} is campaigning at term {self.term}")

    def _leader_check_proposal(self, etype: EntryType, size: int) -> None:
        if self.id not in self.prs:
            raise ProposalDroppedError(f"node {self.id} was removed from the configuration")
        if self.lead_transferee != NONE:
            raise ProposalDroppedError(f"leadership transfer to {self.lead_transferee} in progress")
        if etype == _CONF_CHANGE and self.pending_conf_index > self.log.applied:
            raise ProposalDroppedError(
                f"a configuration change is already pending (at index {self.pending_conf_index},"
                f" applied {self.log.applied}): one change at a time"
            )
        limit = self.max_uncommitted_size_bytes
        if limit:
            cur = self.uncommitted_size_bytes
            # As in etcd, a proposal is always accepted when nothing is uncommitted.
            if cur > 0 and size > 0 and cur + size > limit:
                raise ProposalDroppedError(
                    f"too many uncommitted entries: {cur} bytes pending, limit {limit}"
                )
            self.uncommitted_size_bytes = cur + size

    def _leader_forwarded_proposal(self, m: Message) -> None:
        ents: list[Entry] = []
        index = self.log.last_index()
        for e in m.entries:
            etype = e.type
            data = e.data
            try:
                self._leader_check_proposal(etype, len(data))
            except ProposalDroppedError as err:
                if (
                    etype == _CONF_CHANGE
                    and self.lead_transferee == NONE
                    and self.id in self.prs
                    and self.pending_conf_index > self.log.applied
                ):
                    # As etcd: keep the slot but turn it into a no-op.
                    etype, data = _NORMAL, b""
                else:
                    self.logger.debug("raft %d: dropping forwarded proposal: %s", self.id, err)
                    continue
            index += 1
            ents.append(Entry(self.term, index, etype, data))
            if etype == _CONF_CHANGE:
                self.pending_conf_index = index
        if ents:
            self.log.append(ents)
            self._bcast_pending = True

    def reduce_uncommitted_size(self, ents: tuple[Entry, ...]) -> None:
        if self.max_uncommitted_size_bytes and self.role == _LEADER:
            self.uncommitted_size_bytes = max(0, self.uncommitted_size_bytes - payload_size(ents))

    # --- ReadIndex (thesis §6.4) ---------------------------------------------------------

    def read_index(self, ctx: bytes) -> None:
        role = self.role
        if role == _LEADER:
            self._leader_read_index(ctx, self.id)
        elif role == _FOLLOWER and self.lead != NONE:
            self.msgs.append(Message(_READ_INDEX, to=self.lead, frm=self.id, context=ctx))
        else:
            self.logger.debug("raft %d: no leader; dropping read index", self.id)

    def _leader_read_index(self, ctx: bytes, frm: int) -> None:
        if len(self.voters) == 1 and self.voters[0] == self.id:
            # A single voter confirms its leadership by itself.
            self._answer_read(ctx, frm, self.log.committed)
            return
        if not self._committed_in_current_term():
            # Thesis §6.4 step 1: the commit index is only known to be up to date once an
            # entry of this term (the no-op) has committed.
            if len(self.pending_reads) >= MAX_PENDING_READS_BEFORE_COMMIT:
                self.logger.warning("raft %d: too many queued reads; dropping one", self.id)
                return
            self.pending_reads.append((ctx, frm))
            return
        if self.read_only.full():
            self.logger.warning("raft %d: too many pending reads; dropping one", self.id)
            return
        opened = self.read_only.join(ctx, frm, self.log.committed, self.id)
        if opened is not None:
            self._bcast_heartbeat(opened.ctx)

    def _leader_read_ack(self, frm: int, ctx: bytes) -> None:
        acks = self.read_only.recv_ack(frm, ctx)
        if acks is None or not quorum.has_quorum(self.voters, acks):
            return
        for rnd in self.read_only.advance(ctx):
            for req_ctx, req_from in rnd.requests:
                self._answer_read(req_ctx, req_from, rnd.index)

    def _answer_read(self, ctx: bytes, frm: int, index: int) -> None:
        if frm == NONE or frm == self.id:
            self.read_states.append(ReadState(index, ctx))
        else:
            self.msgs.append(
                Message(
                    _READ_INDEX_RESP, to=frm, frm=self.id, term=self.term, index=index, context=ctx
                )
            )

    def close_read_round(self) -> None:
        self.read_only.close_open()

    # --- leadership transfer (thesis §3.10) -------------------------------------------

    def transfer_leader(self, to: int) -> None:
        if self.role == _LEADER:
            self._leader_transfer(to, raise_errors=True)
        elif self.role == _FOLLOWER and self.lead != NONE:
            self.msgs.append(Message(_TRANSFER_LEADER, to=self.lead, frm=to, term=self.term))
        else:
            raise ProposalDroppedError("no leader: cannot transfer leadership")

    def _leader_transfer(self, transferee: int, raise_errors: bool = False) -> None:
        pr = self.prs.get(transferee)
        if pr is None or pr.is_learner:
            msg = f"cannot transfer leadership to {transferee}: not a voter"
            if raise_errors:
                raise ProposalDroppedError(msg)
            self.logger.debug("raft %d: %s", self.id, msg)
            return
        if self.lead_transferee != NONE:
            if self.lead_transferee == transferee:
                return  # already under way
            self.logger.info("raft %d: aborting transfer to %d", self.id, self.lead_transferee)
            self.lead_transferee = NONE
        if transferee == self.id:
            return  # already the leader
        # The transfer must finish within one election timeout (checked by the tick).
        self.election_elapsed = 0
        self.lead_transferee = transferee
        self.logger.info("raft %d: transferring leadership to %d", self.id, transferee)
        if pr.match == self.log.last_index():
            self.msgs.append(Message(_TIMEOUT_NOW, to=transferee, frm=self.id, term=self.term))
        else:
            self._maybe_send_append(transferee, True)

    # --- transport reports ------------------------------------------------------------

    def report_unreachable(self, nid: int) -> None:
        pr = self.prs.get(nid)
        if self.role == _LEADER and pr is not None and pr.state == _REPLICATE:
            pr.become_probe()

    def report_snapshot(self, nid: int, ok: bool) -> None:
        pr = self.prs.get(nid)
        if self.role != _LEADER or pr is None or pr.state != _SNAPSHOT:
            return
        if not ok:
            pr.pending_snapshot = 0
        pr.become_probe()
        # Wait for the follower's answer (or a heartbeat response) before probing.
        pr.probe_sent = True

    # --- membership (thesis §4.1: one server at a time) --------------------------------

    def apply_conf_change(self, cc: ConfChange) -> ConfState:
        nid = cc.node_id
        kind = cc.type
        if nid == NONE:
            raise RaftError("conf change names node 0")
        if kind == ConfChangeType.ADD_NODE:
            pr = self.prs.get(nid)
            if pr is None:
                self.prs[nid] = self._new_progress(self.log.last_index() + 1, False)
                # A new member counts as active so check-quorum does not trip at once.
                self.prs[nid].recent_active = True
            else:
                pr.is_learner = False
            self.voters = tuple(sorted({*self.voters, nid}))
            self.learners = tuple(x for x in self.learners if x != nid)
        elif kind == ConfChangeType.ADD_LEARNER_NODE:
            pr = self.prs.get(nid)
            if pr is None:
                self.prs[nid] = self._new_progress(self.log.last_index() + 1, True)
                self.prs[nid].recent_active = True
            else:
                pr.is_learner = True
            self.voters = tuple(x for x in self.voters if x != nid)
            self.learners = tuple(sorted({*self.learners, nid}))
        elif kind == ConfChangeType.REMOVE_NODE:
            self.prs.pop(nid, None)
            self.voters = tuple(x for x in self.voters if x != nid)
            self.learners = tuple(x for x in self.learners if x != nid)
        # UPDATE_NODE changes nothing in the configuration.
        self.logger.info("raft %d: applied conf change %s %d", self.id, kind.name, nid)
        if self.role == _LEADER:
            if self.id not in self.voters:
                # A leader removed (or demoted) steps down; the others elect a successor.
                self.logger.info("raft %d: removed from the voters; stepping down", self.id)
                self._become_follower(self.term, NONE)
            else:
                if self.lead_transferee != NONE and self.lead_transferee not in self.voters:
                    self.lead_transferee = NONE
                # A smaller quorum may commit more at once.
                if self._maybe_commit():
                    self._on_commit_advanced()
                self._bcast_pending = True
        return self.conf_state()

    # --- introspection ------------------------------------------------------------------

    def status(self) -> Status:
        progress: dict[int, PeerStatus] = {}
        if self.role == _LEADER:
            for nid, pr in self.prs.items():
                progress[nid] = PeerStatus(
                    match=pr.match,
                    next=pr.next,
                    state=pr.state,
                    recent_active=pr.recent_active,
                    is_learner=pr.is_learner,
                )
        return Status(
            id=self.id,
            term=self.term,
            vote=self.vote,
            commit=self.log.committed,
            applied=self.log.applied,
            leader=self.lead,
            role=self.role,
            lead_transferee=self.lead_transferee,
            conf_state=self.conf_state(),
            progress=progress,
        )


__all__ = ["CAMPAIGN_TRANSFER", "SNAPSHOT_TIMEOUTS", "Raft"]
