"""The lessor's rules one at a time: etcd's limits and texts, leader-only expiry, batching."""

from __future__ import annotations

import itertools

import pytest

from kvorum.lease import (
    DEFAULT_EXPIRED_BATCH,
    ERRORS,
    EXPIRED_RETRY_INTERVAL_S,
    MAX_LEASE_TTL_S,
    LeaseExistsError,
    LeaseExpiredError,
    LeaseNotFoundError,
    LeaseTTLTooLargeError,
    Lessor,
    NotPrimaryError,
    choose_lease_id,
    min_lease_ttl_s,
)
from kvorum.mvcc import Event, EventType, KeyValue
from kvorum.mvcc import LeaseNotFoundError as MvccLeaseNotFoundError


def primary(now_s: float = 0.0, **kw: object) -> Lessor:
    lessor = Lessor(**kw)  # type: ignore[arg-type]
    lessor.promote(now_s, 0.0)
    return lessor


def put(lessor: Lessor, key: bytes, lease_id: int) -> None:
    lessor.apply_events([Event(EventType.PUT, KeyValue(key, 1, 1, 1, b"v", lease_id))])


def delete(lessor: Lessor, key: bytes) -> None:
    lessor.apply_events([Event(EventType.DELETE, KeyValue(key, 0, 2, 0))])


# --- etcd's limits and texts -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("election_ms", "heartbeat_ms", "want_s"),
    [
        (1000, 100, 2),  # etcd defaults: 15 ticks * 100 ms = 1.5 s, rounded up
        (3000, 100, 5),  # 45 ticks -> 4.5 s
        (1000, 300, 2),  # 3 ticks -> 4 ticks (integer halves) * 300 ms = 1.2 s
        (500, 50, 1),  # 15 ticks * 50 ms = 0.75 s
        (5000, 250, 8),  # 20 ticks -> 30 * 250 ms = 7.5 s
    ],
)
def test_min_ttl_follows_etcd_formula(election_ms: int, heartbeat_ms: int, want_s: int) -> None:
    assert min_lease_ttl_s(election_ms, heartbeat_ms) == want_s


def test_min_ttl_default_is_two_seconds() -> None:
    assert min_lease_ttl_s() == 2
    assert Lessor().min_ttl_s == 2


@pytest.mark.parametrize(("asked_s", "granted_s"), [(0, 2), (1, 2), (-5, 2), (2, 2), (60, 60)])
def test_short_ttls_are_raised_to_the_minimum(asked_s: int, granted_s: int) -> None:
    lessor = Lessor()
    assert lessor.grant(7, asked_s, 0.0) == granted_s
    assert lessor.granted_ttl_s(7) == granted_s


def test_grant_errors_carry_etcd_texts() -> None:
    lessor = Lessor()
    with pytest.raises(LeaseTTLTooLargeError) as too_large:
        lessor.grant(1, MAX_LEASE_TTL_S + 1, 0.0)
    assert ERRORS[LeaseTTLTooLargeError].grpc_text == "etcdserver: too large lease TTL"
    assert ERRORS[LeaseTTLTooLargeError].grpc_code == "OUT_OF_RANGE"
    assert str(too_large.value) == "too large lease TTL"

    assert lessor.grant(1, MAX_LEASE_TTL_S, 0.0) == MAX_LEASE_TTL_S  # the limit itself is fine
    with pytest.raises(LeaseExistsError) as exists:
        lessor.grant(1, 10, 0.0)
    assert str(exists.value) == "lease already exists"
    assert ERRORS[LeaseExistsError].grpc_text == "etcdserver: lease already exists"
    assert ERRORS[LeaseExistsError].grpc_code == "FAILED_PRECONDITION"

    with pytest.raises(LeaseNotFoundError):
        lessor.grant(0, 10, 0.0)  # ids are chosen before the proposal, never at apply
    with pytest.raises(LeaseNotFoundError) as missing:
        lessor.revoke(2)
    assert ERRORS[LeaseNotFoundError].grpc_text == "etcdserver: requested lease not found"
    assert ERRORS[LeaseNotFoundError].grpc_code == "NOT_FOUND"
    # One class for etcd's one error, shared with mvcc's lease check.
    assert isinstance(missing.value, MvccLeaseNotFoundError)
    assert ERRORS[NotPrimaryError].grpc_text == "etcdserver: not leader"


def test_duplicate_check_comes_after_ttl_check() -> None:
    lessor = Lessor()
    lessor.grant(1, 10, 0.0)
    with pytest.raises(LeaseTTLTooLargeError):
        lessor.grant(1, MAX_LEASE_TTL_S + 1, 0.0)


def test_choose_lease_id() -> None:
    assert choose_lease_id(42, lambda: 7) == 42
    assert choose_lease_id(-3, lambda: 7) == -3  # a client may ask for any non-zero id
    ids = iter([0, 1 << 63, -1, 5])
    # 0 and 1<<63 mask to 0 and are skipped; -1 masks to the largest positive int64.
    assert choose_lease_id(0, lambda: next(ids)) == (1 << 63) - 1
    with pytest.raises(RuntimeError):
        choose_lease_id(0, lambda: 0)


# --- keys ------------------------------------------------------------------------------------


def test_keys_follow_puts_and_deletes() -> None:
    lessor = Lessor()
    lessor.grant(1, 10, 0.0)
    lessor.grant(2, 10, 0.0)
    put(lessor, b"b", 1)
    put(lessor, b"a", 1)
    put(lessor, b"a", 1)  # same lease again: no change
    assert lessor.keys(1) == (b"a", b"b")
    put(lessor, b"a", 2)  # overwrite with another lease moves the key
    assert (lessor.keys(1), lessor.keys(2)) == ((b"b",), (b"a",))
    put(lessor, b"b", 0)  # overwrite without a lease detaches it
    assert lessor.keys(1) == ()
    assert lessor.lease_of(b"b") == 0
    delete(lessor, b"a")
    assert lessor.keys(2) == ()
    delete(lessor, b"never")  # deleting a key without a lease changes nothing
    with pytest.raises(LeaseNotFoundError):
        lessor.attach(3, b"x")


def test_revoke_returns_sorted_keys_and_forgets_them() -> None:
    lessor = Lessor()
    lessor.grant(1, 10, 0.0)
    for key in (b"zz", b"a", b"m", b"\x00"):
        put(lessor, key, 1)
    assert lessor.revoke(1) == (b"\x00", b"a", b"m", b"zz")
    assert not lessor.exists(1)
    assert lessor.lease_of(b"a") == 0
    delete(lessor, b"a")  # the revoke's own delete events arrive afterwards: harmless
    with pytest.raises(LeaseNotFoundError):
        lessor.revoke(1)


# --- expiry on the primary -------------------------------------------------------------------


def test_lease_expires_exactly_at_its_ttl() -> None:
    lessor = primary(100.0)
    lessor.grant(1, 5, 100.0)
    assert lessor.expired(104.75) == ()
    assert lessor.expired(105.0) == (1,)


def test_expired_lease_is_handed_out_again_only_after_the_retry_interval() -> None:
    lessor = primary()
    lessor.grant(1, 2, 0.0)
    assert lessor.expired(2.0) == (1,)
    assert lessor.expired(2.5) == ()  # its revocation is in flight
    assert lessor.expired(2.0 + EXPIRED_RETRY_INTERVAL_S - 0.25) == ()
    assert lessor.expired(2.0 + EXPIRED_RETRY_INTERVAL_S) == (1,)  # the proposal was lost
    lessor.revoke(1)
    assert lessor.expired(100.0) == ()


def test_expired_is_bounded_and_soonest_first() -> None:
    lessor = primary()
    total = 2 * DEFAULT_EXPIRED_BATCH + 200
    for lease_id in range(total, 0, -1):
        lessor.grant(lease_id, 10 + lease_id % 7, 0.0)
    batches = [lessor.expired(100.0) for _ in range(4)]
    assert [len(b) for b in batches] == [DEFAULT_EXPIRED_BATCH, DEFAULT_EXPIRED_BATCH, 200, 0]
    order = [lid for batch in batches for lid in batch]
    assert order == sorted(order, key=lambda lid: (10 + lid % 7, lid))
    with pytest.raises(ValueError):
        lessor.expired(100.0, 0)


def test_renew_restarts_the_full_ttl() -> None:
    lessor = primary()
    lessor.grant(1, 10, 0.0)
    assert lessor.renew(1, 8.0) == 10
    assert lessor.expired(17.75) == ()
    assert lessor.time_to_live(1, 8.0).ttl_s == 10
    assert lessor.expired(18.0) == (1,)


def test_renew_refuses_expired_and_unknown_leases() -> None:
    lessor = primary()
    lessor.grant(1, 3, 0.0)
    with pytest.raises(LeaseExpiredError):
        lessor.renew(1, 3.0)  # due, revocation pending: etcd does not revive it
    assert ERRORS[LeaseExpiredError].grpc_text == "etcdserver: requested lease not found"
    lessor.revoke(1)
    with pytest.raises(LeaseNotFoundError):
        lessor.renew(1, 3.0)


def test_time_to_live_truncates_like_etcd() -> None:
    lessor = primary()
    lessor.grant(1, 10, 0.0)
    put(lessor, b"k2", 1)
    put(lessor, b"k1", 1)
    ttl = lessor.time_to_live(1, 0.5, keys=True)
    assert (ttl.lease_id, ttl.ttl_s, ttl.granted_ttl_s) == (1, 9, 10)
    assert ttl.keys == (b"k1", b"k2")
    assert lessor.time_to_live(1, 0.5).keys == ()
    assert lessor.time_to_live(1, 10.5).ttl_s == 0  # -0.5 truncates to 0
    assert lessor.time_to_live(1, 11.5).ttl_s == -1  # etcdctl: "already expired"
    with pytest.raises(LeaseNotFoundError):
        lessor.time_to_live(2, 0.0)


def test_leases_lists_soonest_expiry_first() -> None:
    lessor = primary()
    lessor.grant(3, 30, 0.0)
    lessor.grant(1, 50, 0.0)
    lessor.grant(2, 10, 0.0)
    assert lessor.leases() == (2, 3, 1)
    lessor.demote()
    assert lessor.leases() == (1, 2, 3)  # no expiry on a follower: by id


# --- promotion and demotion ------------------------------------------------------------------


def test_follower_never_expires_and_refuses_renewals() -> None:
    lessor = Lessor()
    lessor.grant(1, 2, 0.0)
    assert not lessor.is_primary
    assert lessor.expired(1e9) == ()
    with pytest.raises(NotPrimaryError):
        lessor.renew(1, 0.0)
    with pytest.raises(NotPrimaryError):
        lessor.time_to_live(1, 0.0)


def test_promote_gives_every_lease_its_ttl_plus_the_extension() -> None:
    lessor = Lessor()
    lessor.grant(1, 10, 0.0)  # granted on a follower long ago
    lessor.grant(2, 4, 0.0)
    lessor.promote(50.0, 1.0)
    assert lessor.time_to_live(1, 50.0).ttl_s == 11
    assert lessor.expired(54.75) == ()
    assert lessor.expired(55.0) == (2,)
    lessor.revoke(2)
    assert lessor.expired(61.0) == (1,)


def test_demote_freezes_and_a_later_promote_restarts_the_clock() -> None:
    lessor = primary()
    lessor.grant(1, 5, 0.0)
    lessor.demote()
    assert lessor.expired(1000.0) == ()
    assert lessor.heap_size == 0
    lessor.grant(2, 5, 1000.0)  # applied while a follower: no expiry yet
    lessor.promote(2000.0, 0.5)
    assert lessor.expired(2005.25) == ()
    assert lessor.expired(2005.5) == (1, 2)


def test_promote_spreads_a_pile_of_leases() -> None:
    lessor = Lessor()
    pile = 3000
    for lease_id in range(1, pile + 1):
        lessor.grant(lease_id, 60, 0.0)
    lessor.grant(pile + 1, 3600, 0.0)  # due long after the pile: not delayed
    lessor.promote(0.0, 1.0)
    assert lessor.expired(60.99) == ()
    seen: list[int] = []
    for second in itertools.count(61):
        batch = lessor.expired(float(second), limit=10_000)
        seen.extend(batch)
        for lease_id in batch:
            lessor.revoke(lease_id)  # as the server's applied revocations would
        # 750 per second plus the slot shared by both ends of the one-second window.
        assert len(batch) <= 751
        if len(seen) == pile:
            break
    assert sorted(seen) == list(range(1, pile + 1))
    assert second <= 61 + pile // 750 + 1
    assert lessor.time_to_live(pile + 1, 0.0).ttl_s == 3601


def test_promote_below_the_threshold_does_not_spread() -> None:
    lessor = Lessor()
    for lease_id in range(1, 1000):
        lessor.grant(lease_id, 60, 0.0)
    lessor.promote(0.0, 0.0)
    assert len(lessor.expired(60.0, limit=10_000)) == 999


def test_renewals_do_not_grow_the_heap_without_bound() -> None:
    lessor = primary()
    for lease_id in range(1, 11):
        lessor.grant(lease_id, 10, 0.0)
    for step in range(20_000):
        lessor.renew(1 + step % 10, step * 0.001)
        assert lessor.heap_size <= 1025
    assert lessor.expired(20.0 + 10.0, limit=100) == tuple(range(1, 11))


def test_restore_keeps_a_primary_primary() -> None:
    lessor = primary()
    lessor.grant(1, 10, 0.0)
    orphans = lessor.restore(
        lessor.records(),
        [KeyValue(b"a", 1, 1, 1, b"", 1), KeyValue(b"b", 1, 1, 1, b"", 9)],
        100.0,
        extend_s=1.0,
    )
    assert orphans == 1
    assert lessor.is_primary
    assert lessor.keys(1) == (b"a",)
    assert lessor.expired(110.75) == ()
    assert lessor.expired(111.0) == (1,)
