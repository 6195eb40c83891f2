"""The lessor: lease bookkeeping as a pure state machine (no clock, no I/O, no randomness).

Roles, after etcd 3.4's `lease/lessor.go`:

* Every member applies Grant, Revoke and key attach/detach from committed raft entries, so the
  set of leases, their TTLs and their keys are the same everywhere.
* Only the primary (the raft leader) tracks expiry and accepts renewals. A lease's expiry is
  local, in-memory state: `now + ttl` when granted or renewed on the primary, "forever" on a
  follower. Expiry is never applied directly: the server asks `expired()` for due leases and
  proposes their revocation through raft, so every member deletes the same keys at the same
  revision.
* `promote()` on winning an election resets every expiry to `now + ttl + extend` (the extension
  covers the election time, when no renewal could reach anyone) and spreads a pile of leases
  due together so the revocations do not arrive as one burst. `demote()` freezes everything.

Time is the caller's monotonic clock in seconds (`now_s`); TTLs are whole seconds, as on the
wire. Invariants kept by every method:

* a key belongs to at most one lease: `self._owner[key] == lease_id` iff `key in
  self._leases[lease_id].keys`;
* primary: every lease has a finite expiry and exactly one live heap entry `(deadline_s, id)`
  with `deadline_s == lease.deadline_s`; older entries for it are stale and skipped (lazy
  deletion). Follower: every expiry and deadline is `inf` and the heap is empty.

Not here: lease checkpointing (etcd 3.4's experimental `--experimental-enable-lease-checkpoint`,
off by default); a new leader simply restarts every lease's full TTL, as etcd does by default.
"""

from __future__ import annotations

import heapq
import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from kvorum.lease.errors import (
    LeaseExistsError,
    LeaseExpiredError,
    LeaseNotFoundError,
    LeaseTTLTooLargeError,
    NotPrimaryError,
)
from kvorum.lease.types import LeaseRecord, LeaseSink, TimeToLive
from kvorum.mvcc.types import Event, EventType, KeyValue

#: etcd's `lease.NoLease`: a key with lease 0 has none, and no lease may have id 0.
NO_LEASE = 0
#: etcd's `MaxLeaseTTL`: larger grants fail with "too large lease TTL".
MAX_LEASE_TTL_S = 9_000_000_000
#: etcd's `leaseRevokeRate`: the most revocations the primary starts per second.
LEASE_REVOKE_RATE_PER_S = 1000
#: How often etcd's primary looks for expired leases; `expired()` is meant to be called at it.
EXPIRY_CHECK_INTERVAL_S = 0.5
#: Leases returned by one `expired()` call: the revoke rate over one check interval (etcd: 500).
DEFAULT_EXPIRED_BATCH = int(LEASE_REVOKE_RATE_PER_S * EXPIRY_CHECK_INTERVAL_S)
#: etcd's `defaultExpiredleaseRetryInterval`: an expired lease handed out for revocation is
#: handed out again after this long if its revocation has not been applied by then (the
#: proposal may have been lost in a leader change).
EXPIRED_RETRY_INTERVAL_S = 3.0
#: `promote()` spreads expiries when at least this many leases exist (etcd's threshold) ...
PROMOTE_SPREAD_MIN_LEASES = LEASE_REVOKE_RATE_PER_S
#: ... so that no more than this many fall due per second: below the revoke rate, so a pile-up
#: never takes the whole revocation budget (etcd: 3/4 of the rate).
PROMOTE_SPREAD_RATE_PER_S = LEASE_REVOKE_RATE_PER_S * 3 // 4
#: etcd's defaults: 100 ms heartbeat, 1000 ms election timeout.
DEFAULT_HEARTBEAT_MS = 100
DEFAULT_ELECTION_MS = 1000
#: The heap is rebuilt when stale entries make it larger than this many times the live leases.
_HEAP_SLACK_FACTOR = 2
_HEAP_MIN_REBUILD = 1024
#: Tries `choose_lease_id` gives the id generator to produce a non-zero id.
_CHOOSE_ID_TRIES = 16
_ID_MASK = (1 << 63) - 1
_FOREVER = math.inf


def min_lease_ttl_s(
    election_ms: int = DEFAULT_ELECTION_MS, heartbeat_ms: int = DEFAULT_HEARTBEAT_MS
) -> int:
    """The shortest TTL granted, from the server's timing flags (etcd's `minLeaseTTL`).

    etcd counts the election timeout in heartbeat ticks (integer division), takes one and a half
    election timeouts in ticks (integer division again) and rounds the duration up to a whole
    second: 1.5 s -> 2 s with the default flags, so `lease grant 1` gets a TTL of 2. A lease
    shorter than that could expire during a normal leader election.
    """
    if heartbeat_ms <= 0 or election_ms <= 0:
        raise ValueError("election_ms and heartbeat_ms must be > 0")
    election_ticks = election_ms // heartbeat_ms
    min_ms = (3 * election_ticks // 2) * heartbeat_ms
    return -(-min_ms // 1000)


def choose_lease_id(requested_id: int, next_id: Callable[[], int]) -> int:
    """The id a LeaseGrant proposal carries: the requested one, or a fresh one for 0.

    Runs on the member that receives the request, before the proposal, so the chosen id is part
    of the raft entry and every member applies the same one. `next_id` is the server's id
    generator (etcd's request-id generator); the result is masked to a positive int64 as etcd
    does. Randomness stays with the caller.
    """
    if requested_id != NO_LEASE:
        return requested_id
    for _ in range(_CHOOSE_ID_TRIES):
        candidate = next_id() & _ID_MASK
        if candidate != NO_LEASE:
            return candidate
    raise RuntimeError("lease id generator keeps returning 0")


@dataclass(slots=True, eq=False)
class _Lease:
    lease_id: int
    ttl_s: int
    #: local expiry on the primary; inf on a follower.
    expiry_s: float = _FOREVER
    #: when the heap next looks at this lease: the expiry, or a retry time once handed out.
    deadline_s: float = _FOREVER
    keys: set[bytes] = field(default_factory=set)


class Lessor:
    """Leases, their keys and (on the primary) their expiry. Not thread-safe: one owner."""

    def __init__(
        self,
        *,
        min_ttl_s: int | None = None,
        sink: LeaseSink | None = None,
        expired_retry_interval_s: float = EXPIRED_RETRY_INTERVAL_S,
    ) -> None:
        self.min_ttl_s = min_lease_ttl_s() if min_ttl_s is None else min_ttl_s
        if expired_retry_interval_s <= 0:
            raise ValueError("expired_retry_interval_s must be > 0")
        self._sink = sink
        self._retry_s = expired_retry_interval_s
        self._leases: dict[int, _Lease] = {}
        self._owner: dict[bytes, int] = {}
        self._heap: list[tuple[float, int]] = []
        self._primary = False

    # --- queries --------------------------------------------------------------------------

    @property
    def is_primary(self) -> bool:
        return self._primary

    def __len__(self) -> int:
        return len(self._leases)

    def exists(self, lease_id: int) -> bool:
        """Whether the lease is granted and not revoked (mvcc's `lease_exists` hook)."""
        return lease_id in self._leases

    def granted_ttl_s(self, lease_id: int) -> int:
        return self._get(lease_id).ttl_s

    def lease_of(self, key: bytes) -> int:
        """The lease the key is attached to, `NO_LEASE` if none."""
        return self._owner.get(key, NO_LEASE)

    def keys(self, lease_id: int) -> tuple[bytes, ...]:
        """The lease's keys in byte order."""
        return tuple(sorted(self._get(lease_id).keys))

    def leases(self) -> tuple[int, ...]:
        """Every lease id, soonest expiry first (etcd's order), ties and followers by id."""
        return tuple(
            lease.lease_id
            for lease in sorted(self._leases.values(), key=lambda ls: (ls.expiry_s, ls.lease_id))
        )

    def records(self) -> tuple[LeaseRecord, ...]:
        """The durable view of every lease, by id."""
        return tuple(LeaseRecord(lid, self._leases[lid].ttl_s) for lid in sorted(self._leases))

    def time_to_live(self, lease_id: int, now_s: float, *, keys: bool = False) -> TimeToLive:
        """Remaining and granted TTL. Only the primary knows expiry; followers forward."""
        if not self._primary:
            raise NotPrimaryError
        lease = self._get(lease_id)
        # Go's float -> int64 conversion truncates toward zero; int() does the same.
        remaining_s = int(lease.expiry_s - now_s)
        attached = tuple(sorted(lease.keys)) if keys else ()
        return TimeToLive(lease_id, remaining_s, lease.ttl_s, attached)

    def _get(self, lease_id: int) -> _Lease:
        lease = self._leases.get(lease_id)
        if lease is None:
            raise LeaseNotFoundError
        return lease

    # --- applied from raft (every member) -------------------------------------------------

    def grant(self, lease_id: int, ttl_s: int, now_s: float) -> int:
        """Create the lease; returns the TTL granted (raised to `min_ttl_s` if shorter).

        Checks in etcd's order: id 0 (the server picks ids before proposing, see
        `choose_lease_id`), then TTL too large, then a duplicate id.
        """
        if lease_id == NO_LEASE:
            raise LeaseNotFoundError
        if ttl_s > MAX_LEASE_TTL_S:
            raise LeaseTTLTooLargeError(f"{ttl_s} s")
        if lease_id in self._leases:
            raise LeaseExistsError(f"{lease_id:x}")
        lease = _Lease(lease_id, max(ttl_s, self.min_ttl_s))
        self._leases[lease_id] = lease
        if self._primary:
            self._set_expiry(lease, now_s + lease.ttl_s)
        if self._sink is not None:
            self._sink.save(LeaseRecord(lease_id, lease.ttl_s))
        return lease.ttl_s

    def revoke(self, lease_id: int) -> tuple[bytes, ...]:
        """Drop the lease; returns its keys in byte order for the caller to delete.

        The caller deletes them all in ONE mvcc txn (one revision) in the same backend batch
        as the sink's removal, and in this order on every member (sorted), so the stores stay
        byte-identical. The keys are detached here already; the DELETE events of that txn
        then find no owner and change nothing.
        """
        lease = self._leases.pop(lease_id, None)
        if lease is None:
            raise LeaseNotFoundError
        for key in lease.keys:
            del self._owner[key]
        # Its heap entries are now stale; the lazy deletion in `expired()` drops them.
        if self._sink is not None:
            self._sink.remove(lease_id)
        return tuple(sorted(lease.keys))

    def attach(self, lease_id: int, key: bytes) -> None:
        """Attach the key to the lease, moving it off any lease it had."""
        lease = self._get(lease_id)
        previous = self._owner.get(key, NO_LEASE)
        if previous == lease_id:
            return
        if previous != NO_LEASE:
            self._leases[previous].keys.discard(key)
        lease.keys.add(key)
        self._owner[key] = lease_id

    def detach(self, key: bytes) -> int:
        """Detach the key from its lease; returns that lease (`NO_LEASE` if it had none)."""
        previous = self._owner.pop(key, NO_LEASE)
        if previous != NO_LEASE:
            self._leases[previous].keys.discard(key)
        return previous

    def apply_events(self, events: Iterable[Event]) -> None:
        """Follow the key attachments of one mvcc write, from the events it produced.

        In etcd the mvcc store itself calls Attach/Detach; here the apply layer feeds the write
        responses' events in revision order. A put moves the key to the event's lease (or off
        any lease for lease 0), a delete detaches it. mvcc refuses puts with unknown leases
        (its `lease_exists` hook is `exists`), so attach cannot fail here.
        """
        for event in events:
            key = event.kv.key
            if event.type == EventType.PUT and event.kv.lease != NO_LEASE:
                self.attach(event.kv.lease, key)
            else:
                self.detach(key)

    # --- leadership (this member only) ----------------------------------------------------

    def promote(self, now_s: float, extend_s: float) -> None:
        """Become the primary: every lease expires `ttl + extend_s` from now.

        The server passes its election timeout as `extend_s` (etcd does), so leases whose
        holders could not renew during the election are not all expired at once. With many
        leases, those falling due together are then spread (see `_spread`).
        """
        self._primary = True
        self._heap = []
        for lease in self._leases.values():
            lease.expiry_s = now_s + extend_s + lease.ttl_s
            lease.deadline_s = lease.expiry_s
        if len(self._leases) >= PROMOTE_SPREAD_MIN_LEASES:
            self._spread()
        self._heap = [(ls.deadline_s, ls.lease_id) for ls in self._leases.values()]
        heapq.heapify(self._heap)

    def _spread(self) -> None:
        """Push expiries later so at most `PROMOTE_SPREAD_RATE_PER_S` fall due per second.

        A leaky bucket over the leases in expiry order: each expires at its own time or one
        slot after the previous one, whichever is later. A lease is never made to expire
        earlier, and one due long after a pile-up is not delayed at all. (etcd does the same
        job with one-second windows; the bound is the same.)
        """
        slot_s = 1.0 / PROMOTE_SPREAD_RATE_PER_S
        next_free_s = -_FOREVER
        for lease in sorted(self._leases.values(), key=lambda ls: (ls.expiry_s, ls.lease_id)):
            lease.expiry_s = max(lease.expiry_s, next_free_s)
            lease.deadline_s = lease.expiry_s
            next_free_s = lease.expiry_s + slot_s

    def demote(self) -> None:
        """Stop being the primary: nothing expires here until the next `promote()`."""
        self._primary = False
        self._heap = []
        for lease in self._leases.values():
            lease.expiry_s = _FOREVER
            lease.deadline_s = _FOREVER

    # --- primary only ---------------------------------------------------------------------

    def renew(self, lease_id: int, now_s: float) -> int:
        """Keep-alive: the lease expires its full TTL from now; returns that TTL.

        Raises `NotPrimaryError` on a follower (the server forwards to the leader) and
        `LeaseExpiredError` for a lease past its expiry whose revocation is pending: etcd does
        not revive such a lease, it waits for the revocation and then answers "not found".
        """
        if not self._primary:
            raise NotPrimaryError
        lease = self._get(lease_id)
        if now_s >= lease.expiry_s:
            raise LeaseExpiredError(f"{lease_id:x}")
        self._set_expiry(lease, now_s + lease.ttl_s)
        return lease.ttl_s

    def expired(self, now_s: float, limit: int = DEFAULT_EXPIRED_BATCH) -> tuple[int, ...]:
        """Up to `limit` leases due at `now_s`, soonest first, for the server to revoke.

        A lease handed out here is handed out again `expired_retry_interval_s` later if it is
        still there (its revocation was lost, e.g. in a leader change), never on every call.
        Empty on a follower. Cost: O((returned + stale entries) log n).
        """
        if limit < 1:
            raise ValueError("limit must be >= 1")
        due: list[int] = []
        heap = self._heap
        while heap and len(due) < limit:
            deadline_s, lease_id = heap[0]
            lease = self._leases.get(lease_id)
            if lease is None or lease.deadline_s != deadline_s:
                heapq.heappop(heap)  # stale: revoked, renewed or re-queued since
                continue
            if deadline_s > now_s:
                break
            if now_s >= lease.expiry_s:
                due.append(lease_id)
                self._requeue(lease, now_s + self._retry_s, pop=True)
            else:
                # A retry came due but the lease was renewed meanwhile: wait for its expiry.
                self._requeue(lease, lease.expiry_s, pop=True)
        return tuple(due)

    def _set_expiry(self, lease: _Lease, expiry_s: float) -> None:
        lease.expiry_s = expiry_s
        self._requeue(lease, expiry_s, pop=False)

    def _requeue(self, lease: _Lease, deadline_s: float, *, pop: bool) -> None:
        lease.deadline_s = deadline_s
        entry = (deadline_s, lease.lease_id)
        if pop:
            heapq.heapreplace(self._heap, entry)
        else:
            heapq.heappush(self._heap, entry)
            self._maybe_rebuild_heap()

    def _maybe_rebuild_heap(self) -> None:
        """Drop stale entries once they dominate, so renewals cannot grow the heap unbounded."""
        size = len(self._heap)
        if size <= _HEAP_MIN_REBUILD or size <= _HEAP_SLACK_FACTOR * len(self._leases):
            return
        self._heap = [(ls.deadline_s, ls.lease_id) for ls in self._leases.values()]
        heapq.heapify(self._heap)

    @property
    def heap_size(self) -> int:
        """Entries in the expiry heap, stale ones included (for tests and metrics)."""
        return len(self._heap)

    # --- restart --------------------------------------------------------------------------

    def restore(
        self,
        records: Iterable[LeaseRecord],
        live_kvs: Iterable[KeyValue],
        now_s: float,
        *,
        extend_s: float = 0.0,
    ) -> int:
        """Replace all state with persisted leases and the keys' lease fields.

        Used at start (before mvcc is opened for writes) and after a raft snapshot replaced
        the backend. TTLs below today's minimum are raised to it, as etcd does at recovery.
        Keys naming a lease that does not exist are left unattached (etcd logs and goes on);
        the count of those is returned. A primary stays primary with fresh expiries.
        """
        self._leases = {}
        self._owner = {}
        self._heap = []
        for record in records:
            ttl_s = max(record.ttl_s, self.min_ttl_s)
            self._leases[record.lease_id] = _Lease(record.lease_id, ttl_s)
        orphans = 0
        for kv in live_kvs:
            if kv.lease == NO_LEASE:
                continue
            if kv.lease in self._leases:
                self.attach(kv.lease, kv.key)
            else:
                orphans += 1
        if self._primary:
            self.promote(now_s, extend_s)
        return orphans
