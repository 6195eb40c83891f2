"""The scheduler that drives a simulated cluster from one seed.

Time is an integer count of units (``TICK_UNITS`` per raft tick). Everything that happens is an
event on one heap — member ticks (each member's clock runs at a slightly different rate), fault
injection, persist completions, crashes and restarts — or a message in the simulated network.
All randomness is drawn from ``random.Random(seed)`` or from generators seeded by it, in an order
fixed by the event order, so a seed replays the run exactly; the hash of the event trace proves it.

A run has two phases. The fault phase (``steps`` ticks) mixes client writes and reads, message
loss/delay/duplication, partitions, pauses, crashes (also between a leader's early send and its
persist, and right after an election), membership changes and leadership transfers. The heal
phase stops all faults, restarts every member and requires, within a bounded number of ticks, a
leader and a fresh write applied on every voter; then every acknowledged write must be in every
voter's state (durability).
"""

from __future__ import annotations

import heapq
import random
import traceback
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from hashlib import blake2b

from kvorum.raft.types import (
    ConfChangeType,
    Message,
    MessageType,
    RaftError,
    Ready,
    StateRole,
)
from kvorum.sim.checker import Checker, InvariantViolation
from kvorum.sim.membership import plan_conf_change
from kvorum.sim.network import QUIET, SimNetwork
from kvorum.sim.node import SimNode
from kvorum.sim.scenario import TICK_UNITS, draw_scenario

DEFAULT_STEPS = 300
"""Ticks in the fault phase of a default run (sized for ~0.1 s per seed, see tests/sim)."""
LIVENESS_ELECTIONS = 30
"""The heal phase must succeed within this many election timeouts."""
PROGRESS_EVERY_TICKS = 50

LEADER_TYPES = frozenset(
    {MessageType.APP, MessageType.HEARTBEAT, MessageType.SNAP, MessageType.TIMEOUT_NOW}
)
"""Only a leader sends these, so each one is evidence of who led its term (election safety)."""

DURABLE_REPLIES = frozenset({MessageType.VOTE_RESP, MessageType.APP_RESP})
"""Replies that promise durable state: a granted vote, accepted entries (Ready step 2)."""

_FOREVER = 1 << 62


@dataclass(frozen=True, slots=True)
class SimConfig:
    seed: int
    nodes: int = 3
    steps: int = DEFAULT_STEPS


@dataclass(frozen=True, slots=True)
class SimResult:
    seed: int
    nodes: int
    steps: int
    violation: str | None
    trace_hash: str
    stats: dict[str, int] = field(default_factory=dict)
    checks: dict[str, int] = field(default_factory=dict)
    error_trace: str | None = None
    """The traceback when the run ended in an unexpected exception (a crash in the core)."""

    @property
    def ok(self) -> bool:
        return self.violation is None

    def replay_command(self) -> str:
        return f"python -m kvorum.sim --seed {self.seed} --nodes {self.nodes} --steps {self.steps}"


class Cluster:
    """A seeded cluster of members, a network, a fault injector and the checker."""

    def __init__(self, config: SimConfig, log: Callable[[str], None] | None = None) -> None:
        if config.nodes < 1:
            raise ValueError("a cluster needs at least one member")
        self.config = config
        self._log = log
        self.rng = random.Random(config.seed)
        rng = self.rng
        self.now = 0
        self.checker = Checker()
        self.stats: Counter[str] = Counter()
        self._hash = blake2b(digest_size=16)
        self._events: list[tuple[int, int, Callable[[], None]]] = []
        self._seq = 0
        self._write_seq = 0
        self._read_seq = 0
        self._chaos_on = True
        self._partition_seq = 0
        self._transfer_target = 0
        self._live_index = 0
        self._live_writes: list[bytes] = []
        self._live_proposed_at = 0
        self._live_done = False

        voters = tuple(range(1, config.nodes + 1))
        # One spare member outside the initial configuration, for add-learner / promote.
        ids = (*voters, config.nodes + 1)
        scenario = draw_scenario(rng, voters)
        self.params = scenario.params
        self.rates = scenario.rates
        self.net = SimNetwork(random.Random(rng.getrandbits(64)), scenario.network)
        self.nodes: dict[int, SimNode] = {i: SimNode(i, self.params, self) for i in ids}
        self.ever_voters: set[int] = set(voters)
        for node in self.nodes.values():
            node.start(random.Random(rng.getrandbits(64)))
            # Each member's clock runs at its own rate and phase (bounded skew).
            period = TICK_UNITS + rng.randint(-2, 2)
            self._at(rng.randint(1, TICK_UNITS), self._ticker(node, period))
        self._at(0, self._chaos)
        if log is not None:
            log(f"seed {config.seed}: {scenario.params}")
            log(f"  {scenario.rates}")
            log(f"  {scenario.network}")
            self._at(PROGRESS_EVERY_TICKS * TICK_UNITS, self._progress_event)

    # --- the NodeHost side ------------------------------------------------------------------

    def send(self, msg: Message) -> None:
        t = msg.type
        if t in LEADER_TYPES:
            self.checker.leader(msg.frm, msg.term)
        elif not msg.reject and t in DURABLE_REPLIES:
            disk = self.nodes[msg.frm].disk
            hs = disk.hard_state
            if t == MessageType.VOTE_RESP:
                self.checker.vote_sent(msg.frm, msg.to, msg.term, hs.term, hs.vote)
            else:
                self.checker.append_acked(msg.frm, msg.term, msg.index, hs.term, disk.last_index())
        self.stats["msgs_sent"] += 1
        self._hash.update(
            b"s%d %d>%d %d t%d i%d c%d n%d;"
            % (
                self.now,
                msg.frm,
                msg.to,
                msg.type,
                msg.term,
                msg.index,
                msg.commit,
                len(msg.entries),
            )
        )
        if msg.to not in self.nodes:
            return
        if self.net.send(msg, self.now) == 0 and msg.type == MessageType.SNAP:
            # A real transport notices a failed snapshot stream and says so; without that the
            # leader would wait for this snapshot forever.
            self._at(self.now + 1, lambda: self._report_snapshot(msg, ok=False))

    def persist_delay_units(self, node: SimNode, rd: Ready) -> int:
        rates = self.rates
        if rates.persist_async_p and self.rng.random() < rates.persist_async_p:
            return self.rng.randint(1, rates.persist_max_units)
        return 0

    def schedule_persist_done(self, node: SimNode, delay_units: int) -> None:
        incarnation = node.incarnation

        def done() -> None:
            if node.incarnation != incarnation:
                return
            if node.paused_until > self.now:
                # The write finished, but a paused process only notices when it resumes.
                self._at(node.paused_until, done)
                return
            node.persist_done()

        self._at(self.now + delay_units, done)
        rates = self.rates
        if self._chaos_on and self.rng.random() < rates.crash_mid_persist_p:
            # Crash in the window where the leader's messages are out but its disk is not.
            at = self.now + self.rng.randint(0, delay_units - 1)
            self._at(at, lambda: self._crash_if(node, incarnation, mid_persist=True))

    def leader_elected(self, node: SimNode) -> None:
        self.stats["leaders_elected"] += 1
        if node.id == self._transfer_target:
            self.stats["transfers_completed"] += 1
            self._transfer_target = 0
        self.trace(b"leader %d t%d" % (node.id, node.term))
        if self._chaos_on and self.rng.random() < self.rates.crash_new_leader_p:
            # Rapid leader churn while the new leader's log is only partly replicated is what
            # the subtle commit rules (§5.4.2, the paper's figure 8) exist for.
            incarnation = node.incarnation
            at = self.now + self.rng.randint(0, 2 * TICK_UNITS)
            self._at(at, lambda: self._crash_leader(node, incarnation))
        if self._chaos_on and self.rng.random() < self.rates.read_new_leader_p:
            # A read right after an election: before the new leader commits an entry of its
            # term, its commit index may trail writes its predecessor acknowledged (§6.4).
            self._at(self.now + self.rng.randint(0, TICK_UNITS), lambda: self._read(node))
        if self._chaos_on and self.rng.random() < self.rates.isolate_new_leader_p:
            # The same with the new leader cut off instead: its no-op and whatever it managed to
            # replicate (perhaps only entries of older terms) stay where they are.
            incarnation = node.incarnation
            at = self.now + self.rng.randint(0, 3 * TICK_UNITS)
            self._at(at, lambda: self._isolate_leader(node, incarnation))

    def _isolate_leader(self, node: SimNode, incarnation: int) -> None:
        if node.up and node.incarnation == incarnation and node.role == StateRole.LEADER:
            self.stats["partitions_new_leader"] += 1
            self.trace(b"isolate-leader %d" % node.id)
            self.net.partition((node.id,))
            self._schedule_heal()

    def _crash_leader(self, node: SimNode, incarnation: int) -> None:
        if node.up and node.incarnation == incarnation and node.role == StateRole.LEADER:
            self.stats["crashes_new_leader"] += 1
            self._crash(node, down_ticks=self.rng.randint(1, 2 * self.params.election_tick))

    def trace(self, line: bytes) -> None:
        self._hash.update(line)
        self._hash.update(b";")

    # --- scheduling -------------------------------------------------------------------------

    def _at(self, time: int, fn: Callable[[], None]) -> None:
        self._seq += 1
        heapq.heappush(self._events, (time, self._seq, fn))

    def _ticker(self, node: SimNode, period: int) -> Callable[[], None]:
        def tick() -> None:
            if node.up and node.paused_until <= self.now:
                node.tick()
            self._at(self.now + period, tick)

        return tick

    def _run_until(self, end: int) -> None:
        events = self._events
        net = self.net
        checker = self.checker
        nodes = self.nodes
        while not self._live_done:
            t_event = events[0][0] if events else _FOREVER
            t_msg = net.next_time()
            if t_msg is None:
                t_msg = _FOREVER
            t = t_msg if t_msg <= t_event else t_event
            if t > end:
                self.now = end
                return
            self.now = t
            checker.time = t
            if t_msg <= t_event:
                msg, passes = net.pop()
                node = nodes[msg.to]
                if passes and node.up and node.paused_until > t:
                    # A paused member reads its socket only when it resumes, in arrival order.
                    net.hold(msg, node.paused_until)
                elif passes and node.up:
                    self.stats["msgs_delivered"] += 1
                    node.step(msg)
                    if msg.type == MessageType.SNAP:
                        self._report_snapshot(msg, ok=True)
                else:
                    self._undeliverable(msg)
            else:
                heapq.heappop(events)[2]()

    def _undeliverable(self, msg: Message) -> None:
        self.stats["msgs_undeliverable"] += 1
        if msg.type == MessageType.SNAP:
            self._report_snapshot(msg, ok=False)
        elif self.rng.random() < self.rates.unreachable_report_p:
            sender = self.nodes[msg.frm]
            if sender.up and sender.raw is not None and sender.paused_until <= self.now:
                self.stats["unreachable_reports"] += 1
                sender.raw.report_unreachable(msg.to)
                sender.process()

    def _report_snapshot(self, msg: Message, ok: bool) -> None:
        sender = self.nodes[msg.frm]
        if sender.paused_until > self.now:
            self._at(sender.paused_until, lambda: self._report_snapshot(msg, ok))
            return
        if sender.up and sender.raw is not None:
            self.stats["snapshot_reports_ok" if ok else "snapshot_reports_failed"] += 1
            sender.raw.report_snapshot(msg.to, ok)
            sender.process()

    # --- faults and clients -----------------------------------------------------------------

    def _chaos(self) -> None:
        if not self._chaos_on:
            return
        rng = self.rng
        rates = self.rates
        if rng.random() < rates.propose_p:
            self._propose(self._random_up())
        if rng.random() < rates.read_p:
            self._read(self._read_target())
        if rng.random() < rates.crash_p:
            node = self._random_up()
            if node is not None:
                self._crash(node, down_ticks=rng.randint(1, 4 * self.params.election_tick))
        if rng.random() < rates.pause_p:
            # Half the pauses stall the leader: it resumes believing it still leads.
            node = self._current_leader() if rng.random() < 0.5 else None
            node = node or self._random_up()
            if node is not None:
                # A stalled process (GC, SIGSTOP, a slow disk): no ticks, no input, then resumes.
                node.paused_until = self.now + rng.randint(1, 3 * self.params.election_tick) * (
                    TICK_UNITS
                )
                self.stats["pauses"] += 1
                self.trace(b"pause %d %d" % (node.id, node.paused_until))
        if rng.random() < rates.partition_p and not self.net.partitioned:
            self._partition()
        if rng.random() < rates.transfer_p:
            self._transfer()
        if rng.random() < rates.conf_change_p:
            self._change_membership()
        self._at(self.now + TICK_UNITS, self._chaos)

    def _random_up(self) -> SimNode | None:
        """A random member that is running and not paused (one a client could reach)."""
        now = self.now
        up = [n for n in self.nodes.values() if n.up and n.paused_until <= now]
        return self.rng.choice(up) if up else None

    def _read_target(self) -> SimNode | None:
        """Where a client reads: half the time at a member that believes it leads (a stale
        leader included, which is where a read without a quorum check goes wrong)."""
        if self.rng.random() < 0.5:
            now = self.now
            leaders = [
                n
                for n in self.nodes.values()
                if n.up and n.paused_until <= now and n.role == StateRole.LEADER
            ]
            if leaders:
                return self.rng.choice(leaders)
        return self._random_up()

    def _current_leader(self) -> SimNode | None:
        best: SimNode | None = None
        now = self.now
        for n in self.nodes.values():
            if not n.up or n.paused_until > now or n.role != StateRole.LEADER:
                continue
            if best is None or n.term > best.term:
                best = n
        return best

    def _propose(self, node: SimNode | None) -> int:
        if node is None:
            return 0
        self._write_seq += 1
        write_id = b"w%d" % self._write_seq
        self.trace(b"prop %d %s" % (node.id, write_id))
        try:
            node.propose(write_id)
        except RaftError:
            self.stats["proposals_dropped"] += 1
            return 0
        self.stats["proposals"] += 1
        return self._write_seq

    def _read(self, node: SimNode | None) -> None:
        if node is None or not node.up or node.paused_until > self.now:
            return
        self._read_seq += 1
        ctx = b"r%d" % self._read_seq
        self.trace(b"read %d %s" % (node.id, ctx))
        try:
            if node.read(ctx, self.checker.read_issued()):
                self.stats["reads_issued"] += 1
        except RaftError:
            self.stats["reads_dropped"] += 1

    def _crash(self, node: SimNode, down_ticks: int) -> None:
        lost = node.crash()
        self.stats["crashes"] += 1
        if lost:
            self.stats["crashes_losing_unpersisted"] += 1
        self.trace(b"crash %d %d" % (node.id, down_ticks))
        self._at(self.now + down_ticks * TICK_UNITS, lambda: self._restart(node))

    def _crash_if(self, node: SimNode, incarnation: int, mid_persist: bool) -> None:
        if node.up and node.incarnation == incarnation and node.pending is not None:
            if mid_persist and node.role == StateRole.LEADER:
                self.stats["crashes_leader_mid_persist"] += 1
            self._crash(node, down_ticks=self.rng.randint(1, 3 * self.params.election_tick))

    def _restart(self, node: SimNode) -> None:
        if node.up:
            return
        self.stats["restarts"] += 1
        self.trace(b"restart %d" % node.id)
        node.start(random.Random(self.rng.getrandbits(64)))
        node.process()

    def _partition(self) -> None:
        rng = self.rng
        ids = sorted(self.nodes)
        if rng.random() < 0.5:
            # Cutting off the leader (half the time) strands its newest entries in a minority.
            leader = self._current_leader()
            victim = leader.id if leader is not None and rng.random() < 0.5 else rng.choice(ids)
            self.net.partition((victim,))
            self.stats["partitions_isolate"] += 1
            self.trace(b"isolate %d" % victim)
        else:
            minority = rng.sample(ids, rng.randint(1, (len(ids) - 1) // 2))
            minority.sort()
            self.net.partition(tuple(minority))
            self.stats["partitions_split"] += 1
            self.trace(b"split " + b",".join(b"%d" % i for i in minority))
        self._schedule_heal()

    def _schedule_heal(self) -> None:
        """Heal the current partition after a few election timeouts (unless a newer one)."""
        self._partition_seq += 1
        seq = self._partition_seq
        heal_in = self.rng.randint(self.params.election_tick, 5 * self.params.election_tick)
        self._at(self.now + heal_in * TICK_UNITS, lambda: self._heal(seq))

    def _heal(self, seq: int) -> None:
        if self.net.partitioned and seq == self._partition_seq:
            self.trace(b"heal")
            self.net.heal()

    def _transfer(self) -> None:
        leader = self._current_leader()
        if leader is None or leader.raw is None:
            return
        targets = [v for v in leader.conf_state.voters if v != leader.id]
        if not targets:
            return
        target = self.rng.choice(targets)
        self.trace(b"transfer %d>%d" % (leader.id, target))
        try:
            leader.raw.transfer_leader(target)
        except RaftError:
            # Our view of the role lags the core's by up to one Ready: it may have stepped down.
            self.stats["transfers_dropped"] += 1
            return
        self.stats["transfers_requested"] += 1
        self._transfer_target = target
        leader.process()

    def _change_membership(self) -> None:
        """Propose one membership change at the leader (see kvorum.sim.membership)."""
        leader = self._current_leader()
        if leader is None or leader.raw is None:
            return
        cc = plan_conf_change(self.rng, leader.conf_state, leader.id, self.nodes, self.ever_voters)
        if cc is None:
            return
        self.trace(b"conf %d %d>%d" % (leader.id, cc.type, cc.node_id))
        try:
            leader.raw.propose_conf_change(cc)
        except RaftError:
            self.stats["conf_changes_dropped"] += 1
            return
        if cc.type == ConfChangeType.ADD_NODE:
            self.ever_voters.add(cc.node_id)
        self.stats["conf_changes_proposed"] += 1
        leader.process()

    # --- the run ----------------------------------------------------------------------------

    def run(self) -> SimResult:
        """Run both phases; a violated invariant ends the run and is returned, not raised."""
        violation: str | None = None
        error_trace: str | None = None
        try:
            self._run_until(self.config.steps * TICK_UNITS)
            self._progress("fault phase done")
            self._heal_phase()
        except InvariantViolation as exc:
            violation = str(exc)
        except Exception as exc:  # a crash inside the core is a failure of this seed too
            violation = f"unexpected {type(exc).__name__} at t={self.now}: {exc}"
            error_trace = traceback.format_exc()
        if violation is not None:
            self.trace(b"violation " + violation.encode())
        stats = dict(self.stats)
        stats.update(self.net.stats)
        return SimResult(
            seed=self.config.seed,
            nodes=self.config.nodes,
            steps=self.config.steps,
            violation=violation,
            trace_hash=self._hash.hexdigest(),
            stats=stats,
            checks=dict(self.checker.checks),
            error_trace=error_trace,
        )

    def _heal_phase(self) -> None:
        self._chaos_on = False
        self.net.heal()
        self.net.faults = QUIET
        for node in self.nodes.values():
            node.paused_until = min(node.paused_until, self.now)
            if not node.up:
                self._restart(node)
        start = self.now
        budget_ticks = LIVENESS_ELECTIONS * self.params.election_tick
        deadline = start + budget_ticks * TICK_UNITS
        self._at(self.now, self._liveness_probe)
        self._run_until(deadline)
        leader = self._current_leader()
        voters = leader.conf_state.voters if leader is not None else ()
        if not self._live_done:
            applied = {n.id: n.sm.applied_index for n in self.nodes.values()}
            self.checker.live(
                False,
                tuple(voters),
                f"no leader with a fresh write applied on all voters within {budget_ticks} ticks"
                f" after heal (leader {leader.id if leader else None}, live write index"
                f" {self._live_index}, applied {applied})",
            )
        self.checker.live(True, tuple(voters), "")
        self.stats["liveness_ticks"] = (self.now - start) // TICK_UNITS
        assert leader is not None
        for voter in voters:
            node = self.nodes[voter]
            self.checker.durable(voter, node.sm.applied_index, set(node.sm.writes))
        self._progress("heal phase done")

    def _liveness_probe(self) -> None:
        """Each tick of the heal phase: is a fresh write applied on every voter yet?"""
        if self._live_done:
            return
        leader = self._current_leader()
        if leader is not None:
            stale = self.now - self._live_proposed_at > 2 * self.params.election_tick * TICK_UNITS
            if not self._live_writes or stale:
                # A fresh write at the current leader; retried now and then because the member
                # holding an earlier one may have lost leadership before committing it.
                seq = self._propose(leader)
                if seq:
                    self._live_writes.append(b"w%d" % seq)
                    self._live_proposed_at = self.now
            voters = leader.conf_state.voters
            for write_id in self._live_writes:
                index = self.checker.ack_index(write_id)
                if index is None:
                    continue
                # Wait for every acknowledged write too (some are acknowledged late, by members
                # whose proposals were still in flight), so durability can be judged next.
                index = max(index, self.checker.max_acked_index)
                if all(
                    self.nodes[v].up and self.nodes[v].sm.applied_index >= index for v in voters
                ):
                    self._live_index = index
                    self._live_done = True
                    return
        self._at(self.now + TICK_UNITS, self._liveness_probe)

    def _progress_event(self) -> None:
        # Read-only: draws no randomness and traces nothing, so -v leaves the trace hash alone.
        self._progress("progress")
        self._at(self.now + PROGRESS_EVERY_TICKS * TICK_UNITS, self._progress_event)

    def _progress(self, what: str) -> None:
        if self._log is None:
            return
        parts = []
        for n in self.nodes.values():
            state = n.role.name[0] if n.up else "x"
            parts.append(f"{n.id}:{state} t{n.term} a{n.sm.applied_index}")
        self._log(f"t={self.now // TICK_UNITS} {what}: {' '.join(parts)}")


def run_seed(seed: int, nodes: int = 3, steps: int = DEFAULT_STEPS) -> SimResult:
    """Run one seeded simulation; the result carries the trace hash and any violation."""
    return Cluster(SimConfig(seed=seed, nodes=nodes, steps=steps)).run()
