"""RaftNode: the member's I/O shell around the pure raft core (DESIGN.md §2, §5).

It owns the ``RawNode`` and drives it from two asyncio tasks:

- the ticker calls ``tick()`` every heartbeat interval (and warns when a leader's tick
  came so late that its heartbeats did too);
- the Ready loop carries out each ``Ready`` in the order its contract states: a leader
  hands its APP/HEARTBEAT/SNAP messages to the transport first so they travel while
  its own fsync runs (thesis §10.2.1); then snapshot, entries and hard state are
  persisted with one fsync; then every other message goes out; then committed entries
  (and a snapshot) are applied; then ReadStates are served; then ``advance()``.

Messages received from peers are stepped into the core as they arrive. Callers'
proposals and reads are queued and drained into the core just before each ``ready()``,
so one Ready — one fsync, one transport flush — carries as many as arrived meanwhile.

A proposal's entry carries a request id (``envelope``); the applier, which executes
entries, wakes the proposer through the shared ``Wait`` with that id.
"""

from __future__ import annotations

import asyncio
import logging
import math
import random
import time
from collections import deque
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Protocol

from kvorum.raft import (
    NONE,
    ConfChange,
    Config,
    ConfState,
    Entry,
    EntryType,
    Message,
    MessageType,
    RaftError,
    RawNode,
    Ready,
    Snapshot,
    SoftState,
    StateRole,
    Status,
)
from kvorum.raft import ProposalDroppedError as CoreProposalDroppedError
from kvorum.server import failpoints
from kvorum.server.envelope import (
    RequestIdGenerator,
    decode_conf_change,
    encode_conf_change,
    encode_envelope,
)
from kvorum.server.errors import (
    BadLeaderTransfereeError,
    NoLeaderDeadlineError,
    NoLeaderError,
    ProposalDroppedError,
    RequestTimeoutError,
    ServerError,
    StoppedError,
    TimeoutDueToLeaderFailError,
    TimeoutLeaderTransferError,
    TooManyRequestsError,
)
from kvorum.server.raftstorage import RaftStorage
from kvorum.server.readindex import DEFAULT_READ_RETRY_S, ReadIndexBatcher
from kvorum.server.wait import Wait

__all__ = [
    "EARLY_SEND_TYPES",
    "Applier",
    "LeaderListener",
    "RaftNode",
    "RaftNodeConfig",
    "Transport",
]

logger = logging.getLogger("kvorum.server.raft")
_core_logger = logging.getLogger("kvorum.raft")

EARLY_SEND_TYPES = frozenset({MessageType.APP, MessageType.HEARTBEAT, MessageType.SNAP})
"""A leader's messages that may leave before its own persist completes (thesis §10.2.1)."""
HEARTBEAT_WARNING_INTERVAL_S = 1.0


LeaderListener = Callable[[int, int], None]
"""Called with (leader id, term) when the leader changes; leader 0 means none is known."""


class Transport(Protocol):
    """The peer transport as the member uses it (``PeerTransport`` fits).

    The Ready loop only sends; ``add_peer``/``remove_peer`` are for the membership
    layer applying conf changes. Received messages, unreachable peers and snapshot
    outcomes come back through ``RaftNode.receive``, ``report_unreachable`` and
    ``report_snapshot``, which the transport is constructed with.
    """

    def send(self, messages: Iterable[Message]) -> None: ...

    def add_peer(self, peer_id: int, urls: Sequence[str]) -> None: ...

    def remove_peer(self, peer_id: int) -> None: ...


class Applier(Protocol):
    """The state machine the committed log is applied to (the apply layer).

    ``apply`` gets a restored snapshot (then ``entries`` is empty) or a batch of
    committed entries in log order, each exactly once per start; after a restart the
    entries after the last snapshot are applied again, so applying must skip indexes
    it already holds. It wakes each entry's proposer via the shared ``Wait`` with the
    request id found in the entry's envelope. CONF_CHANGE entries are passed along
    too (for the member list); the RaftNode then applies to the core exactly those the
    state machine accepted (``conf_change_rejected``), as etcd does, so the raft
    configuration and the member list never disagree.
    ``snapshot_data`` returns the state as of the last entry applied (or an awaitable of
    it, for a copy made off the loop; no apply runs until it is done).
    The Ready loop awaits ``apply``: it must never wait on this RaftNode (a proposal or
    a read from inside ``apply`` would wait forever).
    """

    async def apply(self, entries: Sequence[Entry], snapshot: Snapshot | None) -> None: ...

    def snapshot_data(self) -> bytes | Awaitable[bytes]: ...

    def conf_change_rejected(self, index: int) -> bool:
        """Whether the conf change committed at ``index`` was refused when applied."""
        ...


@dataclass(frozen=True, slots=True)
class RaftNodeConfig:
    """Settings of the member's raft shell; etcd's defaults unless said otherwise."""

    member_id: int
    heartbeat_interval_s: float = 0.1  # --heartbeat-interval
    election_ticks: int = 10  # --election-timeout / --heartbeat-interval
    pre_vote: bool = True
    check_quorum: bool = True
    max_size_per_msg_bytes: int = 1024 * 1024
    max_inflight_msgs: int = 512
    max_uncommitted_entries_size_bytes: int = 1 << 30
    max_pending_proposals: int = 10_000  # queued, not yet handed to the core
    max_proposals_per_ready: int = 4096  # drained into the core per Ready
    max_apply_batch_entries: int = 1000  # entries per applier call
    max_waiting_reads: int = 10_000
    max_commit_apply_gap: int = 5000  # etcd: more committed-but-unapplied refuses proposals
    read_retry_s: float = DEFAULT_READ_RETRY_S
    # How long a request waits for a leader to be known. None: until the request's own
    # deadline, as etcd does (its proposals and reads block, then time out).
    no_leader_wait_s: float | None = None
    seed: int | None = None  # election jitter; None draws from the OS

    def __post_init__(self) -> None:
        if self.heartbeat_interval_s <= 0:
            raise ValueError("heartbeat_interval_s must be > 0")
        limits = (
            self.max_pending_proposals,
            self.max_proposals_per_ready,
            self.max_apply_batch_entries,
        )
        if min(limits) <= 0:
            raise ValueError("proposal and apply limits must be > 0")

    @property
    def election_timeout_s(self) -> float:
        return self.heartbeat_interval_s * self.election_ticks

    @property
    def leader_wait_s(self) -> float:
        if self.no_leader_wait_s is not None:
            return self.no_leader_wait_s
        return math.inf


@dataclass(frozen=True, slots=True)
class _Proposal:
    request_id: int
    data: bytes
    conf_change: ConfChange | None = None


class RaftNode:
    """One member's raft: ticks, the Ready loop, propose-and-wait, ReadIndex, transfer."""

    def __init__(
        self,
        config: RaftNodeConfig,
        storage: RaftStorage,
        applier: Applier,
        *,
        wait: Wait | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.config = config
        self.id = config.member_id
        self.storage = storage
        self.applier = applier
        self.wait = wait if wait is not None else Wait()
        self._clock = clock
        snap = storage.snapshot()
        hard_state = storage.hard_state()
        rng = random.Random(config.seed) if config.seed is not None else random.Random()
        core_config = Config(
            id=config.member_id,
            election_tick=config.election_ticks,
            heartbeat_tick=1,
            applied=snap.metadata.index,
            max_size_per_msg_bytes=config.max_size_per_msg_bytes,
            max_inflight_msgs=config.max_inflight_msgs,
            max_uncommitted_entries_size_bytes=config.max_uncommitted_entries_size_bytes,
            check_quorum=config.check_quorum,
            pre_vote=config.pre_vote,
        )
        self._raw = RawNode(core_config, storage.memory, rng, _core_logger)
        self._snapshot_to_restore = snap if not snap.is_empty() else None
        # Invariant: _applied is the index of the last entry the applier has finished.
        self._applied = snap.metadata.index
        self._term = hard_state.term
        self._commit = hard_state.commit
        self._leader = NONE
        self._role = StateRole.FOLLOWER
        self._conf_state = self._raw.status().conf_state
        self._leader_elected_at_s: float | None = None
        self._ids = RequestIdGenerator(config.member_id, int(time.time() * 1000))
        self._proposals: deque[_Proposal] = deque()
        self._reads = ReadIndexBatcher(
            first_ctx=self._ids.next(),
            max_waiting=config.max_waiting_reads,
            retry_s=config.read_retry_s,
        )
        self._transport: Transport | None = None
        self._wakeup = asyncio.Event()
        self._leader_known = asyncio.Event()  # also set on stop, to release waiters
        self._leader_changed = asyncio.Event()  # replaced at every change
        self._leader_listeners: list[LeaderListener] = []
        self._tasks: list[asyncio.Task[None]] = []
        self._running = False
        self._stopped = False
        self.failure: BaseException | None = None
        self.heartbeat_late_count = 0  # late leader ticks, for a metrics counter
        self.proposals_failed_count = 0  # timed out or dropped, for a metrics counter
        self._heartbeat_warned_s = float("-inf")

    # --- lifecycle -------------------------------------------------------------------------

    async def start(self, transport: Transport) -> None:
        """Restore the applier from the snapshot (if any) and start ticking and the loop.

        ``transport`` must already accept ``send``; stop this node before the transport.
        """
        if self._running or self._stopped:
            raise RuntimeError("RaftNode.start() may be called once")
        self._transport = transport
        if self._snapshot_to_restore is not None:
            await self.applier.apply((), self._snapshot_to_restore)
            self._snapshot_to_restore = None
        self._running = True
        name = f"{self.id:x}"
        self._tasks = [
            asyncio.create_task(self._ready_loop(), name=f"raft-ready-{name}"),
            asyncio.create_task(self._ticker(), name=f"raft-tick-{name}"),
        ]
        self._wake()

    async def stop(self) -> None:
        """Stop ticking and the loop, fail every waiter, flush and close the WAL."""
        if self._stopped:
            return
        self._stopped = True
        self._running = False
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._fail_waiters(StoppedError())
        await self.storage.close()
        logger.info(
            "raft: member %x stopped at term %d, applied %d", self.id, self._term, self._applied
        )

    # --- status, for response headers -------------------------------------------------------

    @property
    def leader_id(self) -> int:
        return self._leader

    @property
    def is_leader(self) -> bool:
        return self._role == StateRole.LEADER

    @property
    def role(self) -> StateRole:
        return self._role

    @property
    def term(self) -> int:
        return self._term

    @property
    def commit_index(self) -> int:
        return self._commit

    @property
    def applied_index(self) -> int:
        return self._applied

    def raft_status(self) -> Status:
        """The core's full status (progress of each follower on the leader)."""
        return self._raw.status()

    def add_leader_listener(self, listener: LeaderListener) -> None:
        """Call ``listener(leader_id, term)`` at every leader change (0: leader lost).

        Called on the loop, between Readys; it must not block (lessor promotion and
        demotion, metrics).
        """
        self._leader_listeners.append(listener)

    @property
    def conf_state(self) -> ConfState:
        return self._conf_state

    @property
    def running(self) -> bool:
        return self._running

    # --- transport callbacks -------------------------------------------------------------------

    def receive(self, msg: Message) -> None:
        """A message from a peer: step it into the core at once (safe mid-Ready)."""
        if not self._running:
            return
        try:
            self._raw.step(msg)
        except RaftError as exc:
            logger.debug(
                "raft: member %x ignored %s from %x: %s", self.id, msg.type.name, msg.frm, exc
            )
            return
        self._wake()

    def report_unreachable(self, peer_id: int) -> None:
        if self._running:
            self._raw.report_unreachable(peer_id)
            self._wake()

    def report_snapshot(self, peer_id: int, ok: bool) -> None:
        if self._running:
            self._raw.report_snapshot(peer_id, ok)
            self._wake()

    # --- requests ----------------------------------------------------------------------------

    def next_request_id(self) -> int:
        """A fresh id from this member's request-id generator (etcd's reqIDGen): proposals'
        ids, and ids a proposal carries, such as a new lease's."""
        return self._ids.next()

    async def propose(self, payload: bytes, timeout_s: float) -> object:
        """Propose ``payload``; returns what the applier triggered its request id with.

        Raises ``NoLeaderError`` if no leader appears within the leader wait, a
        ``RequestTimeoutError`` if the entry is not applied here within ``timeout_s``.
        """
        return await self._propose_and_wait(payload, None, timeout_s)

    async def propose_conf_change(self, cc: ConfChange, timeout_s: float) -> ConfState:
        """Propose a membership change; returns the membership once it is applied here."""
        result = await self._propose_and_wait(b"", cc, timeout_s)
        assert isinstance(result, ConfState)
        return result

    async def read_index(self, timeout_s: float) -> int:
        """Wait until a linearizable read may be served locally; returns its read index.

        Every read waiting when the loop runs next shares one ReadIndex round.
        """
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        self._check_running()
        await self._wait_for_leader(deadline)
        future = self._reads.add()
        self._wake()
        try:
            async with asyncio.timeout_at(deadline):
                return await future
        except TimeoutError:
            if self._leader == NONE:
                raise NoLeaderError("no leader while waiting for the read index") from None
            raise RequestTimeoutError("read index not confirmed in time") from None

    async def transfer_leadership(self, to: int, timeout_s: float) -> None:
        """Hand leadership to member ``to`` (thesis §3.10); returns once it leads."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        self._check_running()
        if to == self._leader:
            return
        if to not in self._conf_state.voters:
            raise BadLeaderTransfereeError(f"{to:x} is not a voter")
        try:
            self._raw.transfer_leader(to)
        except CoreProposalDroppedError as exc:
            if self._leader == NONE:
                raise NoLeaderError(str(exc)) from None
            raise BadLeaderTransfereeError(str(exc)) from None
        self._wake()
        try:
            async with asyncio.timeout_at(deadline):
                while self._leader != to:
                    await self._leader_changed.wait()
                    self._check_running()
        except TimeoutError:
            raise TimeoutLeaderTransferError(f"leader is still {self._leader:x}") from None

    async def wait_for_leader(self, timeout_s: float) -> int:
        """The leader's id once one is known (for start-up and tests)."""
        loop = asyncio.get_running_loop()
        await self._wait_for_leader(loop.time() + timeout_s, no_leader_wait_s=timeout_s)
        return self._leader

    async def wait_applied(self, index: int, timeout_s: float) -> None:
        """Return once this member has applied ``index`` (polled every quarter heartbeat)."""
        async with asyncio.timeout(timeout_s):
            while self._applied < index:
                self._check_running()
                await asyncio.sleep(self.config.heartbeat_interval_s / 4)

    # --- internals: requests ---------------------------------------------------------------------

    async def _propose_and_wait(
        self, payload: bytes, cc: ConfChange | None, timeout_s: float
    ) -> object:
        loop = asyncio.get_running_loop()
        started_s = self._clock()
        deadline = loop.time() + timeout_s
        self._check_running()
        gap = self._commit - self._applied
        if gap > self.config.max_commit_apply_gap:
            # Applying lags far behind the log (a restart replaying it, a slow backend):
            # more proposals would only deepen the queue. etcd refuses them the same way.
            raise TooManyRequestsError(f"{gap} committed entries are not applied yet")
        await self._wait_for_leader(deadline)
        if len(self._proposals) >= self.config.max_pending_proposals:
            raise TooManyRequestsError(f"{len(self._proposals)} proposals queued")
        request_id = self.next_request_id()
        future = self.wait.register(request_id)
        if cc is None:
            proposal = _Proposal(request_id, encode_envelope(request_id, payload))
        else:
            proposal = _Proposal(request_id, b"", encode_conf_change(request_id, cc))
        self._proposals.append(proposal)
        self._wake()
        try:
            async with asyncio.timeout_at(deadline):
                return await future
        except TimeoutError:
            self.proposals_failed_count += 1
            raise self._timeout_error(started_s) from None
        finally:
            self.wait.cancel(request_id)  # a no-op once triggered

    async def _wait_for_leader(
        self, deadline: float, no_leader_wait_s: float | None = None
    ) -> None:
        if self._leader != NONE:
            return
        loop = asyncio.get_running_loop()
        wait_s = self.config.leader_wait_s if no_leader_wait_s is None else no_leader_wait_s
        give_up = min(deadline, loop.time() + wait_s)
        try:
            async with asyncio.timeout_at(give_up):
                while self._leader == NONE:
                    await self._leader_known.wait()
                    self._check_running()
        except TimeoutError:
            if give_up >= deadline:
                raise NoLeaderDeadlineError("no leader before the request's deadline") from None
            raise NoLeaderError(f"no leader within {wait_s:.3f} s") from None

    def _timeout_error(self, started_s: float) -> ServerError:
        """etcd's rule: a request that started shortly before the current leader was
        elected most likely timed out because the previous leader failed."""
        elected = self._leader_elected_at_s
        window_s = 2 * self.config.election_timeout_s
        if elected is not None and elected - window_s <= started_s <= elected:
            return TimeoutDueToLeaderFailError()
        return RequestTimeoutError()

    def _check_running(self) -> None:
        if not self._running:
            if self.failure is not None:
                raise StoppedError(f"the raft loop failed: {self.failure}")
            raise StoppedError()

    def _wake(self) -> None:
        self._wakeup.set()

    # --- internals: the ticker ------------------------------------------------------------------

    async def _ticker(self) -> None:
        loop = asyncio.get_running_loop()
        interval_s = self.config.heartbeat_interval_s
        last_s = loop.time()
        while True:
            await asyncio.sleep(max(0.0, last_s + interval_s - loop.time()))
            now_s = loop.time()
            if self._role == StateRole.LEADER and now_s - last_s > 2 * interval_s:
                self._heartbeat_late(now_s, now_s - last_s)
            last_s = now_s
            self._raw.tick()
            self._wake()  # also lets the loop re-issue unanswered read rounds

    def _heartbeat_late(self, now_s: float, elapsed_s: float) -> None:
        """A leader tick came over twice the interval late: so did its heartbeats.

        Followers that hear nothing for an election timeout elect someone else; etcd
        warns of this same condition in these words. Logged at most once a second.
        """
        self.heartbeat_late_count += 1
        if now_s - self._heartbeat_warned_s < HEARTBEAT_WARNING_INTERVAL_S:
            return
        self._heartbeat_warned_s = now_s
        interval_s = self.config.heartbeat_interval_s
        logger.warning(
            "raft: member %x: leader failed to send out heartbeat on time; took too long, "
            "leader is overloaded likely from slow disk (heartbeat interval %.0f ms, expected "
            "within %.0f ms, exceeded by %.0f ms)",
            self.id,
            interval_s * 1000,
            2 * interval_s * 1000,
            (elapsed_s - 2 * interval_s) * 1000,
        )

    # --- internals: the Ready loop ----------------------------------------------------------------

    async def _ready_loop(self) -> None:
        try:
            while True:
                await self._wakeup.wait()
                self._wakeup.clear()
                while True:
                    self._feed_core()
                    if not self._raw.has_ready():
                        break
                    await self._handle_ready(self._raw.ready())
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            # A failed WAL write or apply leaves the log's state unknown: stop serving.
            logger.critical(
                "raft: member %x: the Ready loop failed (%s: %s); the member stops serving",
                self.id,
                type(exc).__name__,
                exc,
                exc_info=True,
            )
            self.failure = exc
            self._running = False
            for task in self._tasks:
                if task is not asyncio.current_task():
                    task.cancel()
            self._fail_waiters(StoppedError(str(exc)))

    def _feed_core(self) -> None:
        """Hand queued proposals and read rounds to the core before taking a Ready."""
        raw = self._raw
        proposals = self._proposals
        wait = self.wait
        for _ in range(min(len(proposals), self.config.max_proposals_per_ready)):
            p = proposals.popleft()
            if p.request_id not in wait:
                continue  # its requester gave up already
            try:
                if p.conf_change is None:
                    raw.propose(p.data)
                else:
                    raw.propose_conf_change(p.conf_change)
            except CoreProposalDroppedError as exc:
                self.proposals_failed_count += 1
                wait.fail(p.request_id, self._dropped_error(exc))
        if proposals:
            self._wake()  # the rest goes with the next Ready
        now_s = self._clock()
        for ctx in self._reads.due_retries(now_s):
            raw.read_index(ctx)
        new_round = self._reads.start_round(now_s)
        if new_round is not None:
            raw.read_index(new_round)

    def _dropped_error(self, exc: CoreProposalDroppedError) -> ServerError:
        # The core's texts start with "no leader" for exactly that case.
        if str(exc).startswith("no leader"):
            return NoLeaderError(str(exc))
        logger.debug("raft: member %x: proposal dropped: %s", self.id, exc)
        return ProposalDroppedError(str(exc))

    async def _handle_ready(self, rd: Ready) -> None:
        if rd.hard_state is not None:
            self._term = rd.hard_state.term
            self._commit = rd.hard_state.commit
        if rd.soft_state is not None:
            self._on_soft_state(rd.soft_state)
        transport = self._transport
        assert transport is not None
        later: Sequence[Message] = rd.messages
        if self._role == StateRole.LEADER and rd.messages:
            early = [m for m in rd.messages if m.type in EARLY_SEND_TYPES]
            if early:
                later = [m for m in rd.messages if m.type not in EARLY_SEND_TYPES]
                transport.send(early)
        # 1. Persist: snapshot, entries, hard state; one fsync.
        await self.storage.persist(rd)
        failpoints.hit("after-wal-write-before-send")
        # 2. Everything that had to wait for durability (votes, APP_RESP, ...).
        if later:
            transport.send(later)
        # 3. Apply.
        if rd.committed_entries or not rd.snapshot.is_empty():
            await self._apply(rd)
        # 4. Reads.
        for rs in rd.read_states:
            self._reads.on_read_state(rs, self._applied)
        # 5. Advance; then snapshot, if due, at exactly the applied index.
        self._raw.advance(rd)
        if self.storage.snapshot_due(self._applied):
            await self.storage.create_snapshot(
                self._applied, self._conf_state, self.applier.snapshot_data
            )

    async def _apply(self, rd: Ready) -> None:
        if not rd.snapshot.is_empty():
            snap = rd.snapshot
            await self.applier.apply((), snap)
            self._applied = snap.metadata.index
            self._conf_state = snap.metadata.conf_state
            logger.info(
                "raft: member %x restored a snapshot from the leader at index %d (term %d)",
                self.id,
                snap.metadata.index,
                snap.metadata.term,
            )
        entries = rd.committed_entries
        step = self.config.max_apply_batch_entries
        for start in range(0, len(entries), step):
            batch = entries[start : start + step]
            failpoints.hit("after-commit-before-apply")
            await self.applier.apply(batch, None)
            for entry in batch:
                if entry.type == EntryType.CONF_CHANGE:
                    self._apply_conf_change(entry)
            self._applied = batch[-1].index
            self._reads.on_applied(self._applied)
        self._reads.on_applied(self._applied)

    def _apply_conf_change(self, entry: Entry) -> None:
        try:
            request_id, cc = decode_conf_change(entry)
        except ValueError:
            # Not proposed through this shell (no request id): apply it all the same.
            request_id, cc = 0, ConfChange.decode(entry.data)
        if self.applier.conf_change_rejected(entry.index):
            # Refused by the membership rules (its proposer already got the error): the
            # core must not take it either, or raft's voters and the member list diverge.
            logger.info(
                "raft: member %x skipped conf change %s %x at index %d: refused when applied",
                self.id,
                cc.type.name,
                cc.node_id,
                entry.index,
            )
            return
        self._conf_state = self._raw.apply_conf_change(cc)
        logger.info(
            "raft: member %x applied conf change %s %x at index %d; voters %s, learners %s",
            self.id,
            cc.type.name,
            cc.node_id,
            entry.index,
            ",".join(f"{v:x}" for v in self._conf_state.voters),
            ",".join(f"{v:x}" for v in self._conf_state.learners) or "none",
        )
        if request_id:
            self.wait.trigger(request_id, self._conf_state)

    def _on_soft_state(self, ss: SoftState) -> None:
        previous = self._leader
        self._role = ss.role
        if ss.leader == previous:
            return
        self._leader = ss.leader
        if ss.leader == NONE:
            self._leader_known.clear()
            logger.info("raft: member %x lost leader %x at term %d", self.id, previous, self._term)
        else:
            self._leader_elected_at_s = self._clock()
            self._leader_known.set()
            if ss.leader == self.id:
                logger.info("raft: member %x became leader at term %d", self.id, self._term)
            else:
                logger.info(
                    "raft: member %x elected leader %x at term %d", self.id, ss.leader, self._term
                )
        changed, self._leader_changed = self._leader_changed, asyncio.Event()
        changed.set()
        for listener in self._leader_listeners:
            try:
                listener(ss.leader, self._term)
            except Exception:
                # A listener's bug must not stop replication; it is loud in the log.
                logger.exception("raft: member %x: leader listener %r failed", self.id, listener)

    def _fail_waiters(self, error: ServerError) -> None:
        self._proposals.clear()
        self.wait.fail_all(error)
        self._reads.fail_all(error)
        # Wake leader waiters so they see the member is no longer running.
        self._leader_known.set()
        self._leader_changed.set()
