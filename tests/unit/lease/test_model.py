"""The lessor against a plain model of etcd's lease rules, over a fake clock.

The model is a dict per concern (lease -> TTL and expiry, key -> lease) and answers every
question by scanning: due leases are those whose next look-up time has passed, taken soonest
first. It knows nothing of heaps, lazy deletion or stale entries, so agreement on random runs of
grant / revoke / put / delete / renew / promote / demote / expire / restart checks the lessor's
bookkeeping against the rules themselves. Times are multiples of 1/4 s so float sums are exact.

`KVORUM_LONG=1` runs many more and longer examples.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field

import hypothesis.strategies as st
from hypothesis import settings
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule

from kvorum.lease import (
    MAX_LEASE_TTL_S,
    LeaseExistsError,
    LeaseExpiredError,
    LeaseNotFoundError,
    LeaseRecord,
    LeaseTTLTooLargeError,
    Lessor,
    MemoryLeaseStore,
    NotPrimaryError,
    recover_lessor,
)
from kvorum.mvcc import Event, EventType, KeyValue

LONG = os.environ.get("KVORUM_LONG") == "1"
MIN_TTL_S = 2
RETRY_S = 3.0
IDS = st.integers(min_value=0, max_value=6)
KEYS = st.sampled_from([b"a", b"b", b"c", b"d", b"e"])
TTLS = st.one_of(
    st.integers(min_value=-2, max_value=8),
    st.sampled_from([MAX_LEASE_TTL_S, MAX_LEASE_TTL_S + 1]),
)
STEPS_S = st.sampled_from([0.0, 0.25, 0.5, 1.0, 2.0, 3.0, 7.5])


@dataclass
class ModelLease:
    ttl_s: int
    expiry_s: float = math.inf
    next_check_s: float = math.inf
    keys: set[bytes] = field(default_factory=set)


class LessorMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.store = MemoryLeaseStore()
        self.lessor = Lessor(min_ttl_s=MIN_TTL_S, sink=self.store, expired_retry_interval_s=RETRY_S)
        self.now_s = 100.0
        self.primary = False
        self.leases: dict[int, ModelLease] = {}
        self.owner: dict[bytes, int] = {}

    # --- model helpers --------------------------------------------------------------------

    def _set_expiry(self, lease: ModelLease, expiry_s: float) -> None:
        lease.expiry_s = expiry_s
        lease.next_check_s = expiry_s

    def _detach(self, key: bytes) -> None:
        old = self.owner.pop(key, 0)
        if old:
            self.leases[old].keys.discard(key)

    # --- rules ----------------------------------------------------------------------------

    @initialize(
        leader=st.booleans(),
        grants=st.lists(st.tuples(IDS, st.integers(min_value=0, max_value=6)), max_size=4),
    )
    def start(self, leader: bool, grants: list[tuple[int, int]]) -> None:
        """Most runs start as the leader with a few leases, where expiry bugs can show."""
        if leader:
            self.promote(0.0)
        for lease_id, ttl_s in grants:
            self.grant(lease_id, ttl_s)

    @rule(step_s=STEPS_S)
    def advance(self, step_s: float) -> None:
        self.now_s += step_s

    @rule(then=st.sampled_from(["expire", "renew", "time_to_live"]))
    def at_next_due(self, then: str) -> None:
        """Jump exactly onto the soonest expiry or retry time and act there at once, as the
        server's expiry loop or a late keep-alive would: boundaries are where bugs hide."""
        due = [(ls.next_check_s, lid) for lid, ls in self.leases.items()]
        due = [(t, lid) for t, lid in due if self.now_s <= t < math.inf]
        if not due:
            return
        self.now_s, lease_id = min(due)
        if then == "expire":
            self.expire(len(self.leases))
        elif then == "renew":
            self.renew(lease_id)
        else:
            self.time_to_live(lease_id, True)

    @rule(lease_id=IDS, ttl_s=TTLS)
    def grant(self, lease_id: int, ttl_s: int) -> None:
        if lease_id == 0:
            expected: type[Exception] | None = LeaseNotFoundError
        elif ttl_s > MAX_LEASE_TTL_S:
            expected = LeaseTTLTooLargeError
        elif lease_id in self.leases:
            expected = LeaseExistsError
        else:
            expected = None
        try:
            got = self.lessor.grant(lease_id, ttl_s, self.now_s)
        except (LeaseNotFoundError, LeaseTTLTooLargeError, LeaseExistsError) as err:
            assert type(err) is expected
            return
        assert expected is None
        assert got == max(ttl_s, MIN_TTL_S)
        lease = ModelLease(got)
        self.leases[lease_id] = lease
        if self.primary:
            self._set_expiry(lease, self.now_s + got)

    @rule(lease_id=IDS)
    def revoke(self, lease_id: int) -> None:
        if lease_id not in self.leases:
            try:
                self.lessor.revoke(lease_id)
            except LeaseNotFoundError:
                return
            raise AssertionError("revoke of a missing lease succeeded")
        keys = self.lessor.revoke(lease_id)
        lease = self.leases.pop(lease_id)
        assert keys == tuple(sorted(lease.keys))
        for key in keys:
            del self.owner[key]
        # The server then deletes the keys in one txn; its events must change nothing.
        self.lessor.apply_events(Event(EventType.DELETE, KeyValue(k, 0, 9, 0)) for k in keys)

    @rule(key=KEYS, lease_id=IDS)
    def put(self, key: bytes, lease_id: int) -> None:
        if lease_id != 0 and lease_id not in self.leases:
            assert not self.lessor.exists(lease_id)  # mvcc would refuse the put
            return
        event = Event(EventType.PUT, KeyValue(key, 1, 1, 1, b"v", lease_id))
        self.lessor.apply_events([event])
        self._detach(key)
        if lease_id:
            self.owner[key] = lease_id
            self.leases[lease_id].keys.add(key)

    @rule(key=KEYS)
    def delete(self, key: bytes) -> None:
        self.lessor.apply_events([Event(EventType.DELETE, KeyValue(key, 0, 2, 0))])
        self._detach(key)

    @rule(lease_id=IDS)
    def renew(self, lease_id: int) -> None:
        lease = self.leases.get(lease_id)
        try:
            got = self.lessor.renew(lease_id, self.now_s)
        except NotPrimaryError:
            assert not self.primary
            return
        except LeaseNotFoundError:
            assert self.primary and lease is None
            return
        except LeaseExpiredError:
            assert self.primary and lease is not None and self.now_s >= lease.expiry_s
            return
        assert self.primary and lease is not None and self.now_s < lease.expiry_s
        assert got == lease.ttl_s
        self._set_expiry(lease, self.now_s + lease.ttl_s)

    @rule(extend_s=st.sampled_from([0.0, 1.0, 2.5]))
    def promote(self, extend_s: float) -> None:
        self.lessor.promote(self.now_s, extend_s)
        self.primary = True
        for lease in self.leases.values():
            self._set_expiry(lease, self.now_s + extend_s + lease.ttl_s)

    @rule()
    def demote(self) -> None:
        self.lessor.demote()
        self.primary = False
        for lease in self.leases.values():
            self._set_expiry(lease, math.inf)

    @rule(limit=st.integers(min_value=1, max_value=4))
    def expire(self, limit: int) -> None:
        got = self.lessor.expired(self.now_s, limit)
        due = sorted(
            (lease.next_check_s, lid)
            for lid, lease in self.leases.items()
            if lease.next_check_s <= self.now_s
        )
        want = tuple(lid for _, lid in due[:limit])
        assert got == want
        for lid in want:
            lease = self.leases[lid]
            assert lease.expiry_s <= self.now_s  # only expired leases are ever handed out
            lease.next_check_s = self.now_s + RETRY_S

    @rule(lease_id=IDS, keys=st.booleans())
    def time_to_live(self, lease_id: int, keys: bool) -> None:
        lease = self.leases.get(lease_id)
        try:
            ttl = self.lessor.time_to_live(lease_id, self.now_s, keys=keys)
        except NotPrimaryError:
            assert not self.primary
            return
        except LeaseNotFoundError:
            assert lease is None
            return
        assert self.primary and lease is not None
        assert ttl.granted_ttl_s == lease.ttl_s
        assert ttl.ttl_s == math.trunc(lease.expiry_s - self.now_s)
        assert ttl.keys == (tuple(sorted(lease.keys)) if keys else ())

    @rule()
    def restart(self) -> None:
        """Crash and recover from the persisted rows and the live keys: a follower again."""
        live = [KeyValue(k, 1, 1, 1, b"v", lid) for k, lid in sorted(self.owner.items())]
        live.append(KeyValue(b"orphan", 1, 1, 1, b"v", 99))  # its lease is gone
        self.lessor, orphans = recover_lessor(self.store, live, min_ttl_s=MIN_TTL_S)
        assert orphans == 1
        self.primary = False
        for lease in self.leases.values():
            self._set_expiry(lease, math.inf)

    # --- invariants -----------------------------------------------------------------------

    @invariant()
    def same_leases(self) -> None:
        assert len(self.lessor) == len(self.leases)
        assert self.lessor.is_primary == self.primary
        order = sorted(self.leases, key=lambda lid: (self.leases[lid].expiry_s, lid))
        assert self.lessor.leases() == tuple(order)
        for lid, lease in self.leases.items():
            assert self.lessor.exists(lid)
            assert self.lessor.granted_ttl_s(lid) == lease.ttl_s
            assert self.lessor.keys(lid) == tuple(sorted(lease.keys))

    @invariant()
    def same_owners(self) -> None:
        for key in (b"a", b"b", b"c", b"d", b"e"):
            assert self.lessor.lease_of(key) == self.owner.get(key, 0)

    @invariant()
    def persisted_rows_match(self) -> None:
        want = {lid: LeaseRecord(lid, lease.ttl_s) for lid, lease in self.leases.items()}
        assert self.store.rows == want

    @invariant()
    def heap_bounded(self) -> None:
        assert self.lessor.heap_size <= max(1024, 2 * len(self.leases)) + 1


LessorMachine.TestCase.settings = settings(
    max_examples=400 if LONG else 60,
    stateful_step_count=120 if LONG else 40,
    deadline=None,
)
TestLessorModel = LessorMachine.TestCase
