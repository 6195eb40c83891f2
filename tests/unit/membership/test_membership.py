"""The membership store and alarm store over a real backend: etcd's rules and texts."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from kvorum.backend import Backend
from kvorum.membership import (
    ERRORS,
    AlarmMember,
    AlarmStore,
    AlarmType,
    ConfChangeContext,
    IDRemovedError,
    LearnerNotReadyError,
    Member,
    MemberExistsError,
    MemberNotFoundError,
    MemberNotLearnerError,
    MembershipError,
    MembershipStore,
    NotEnoughStartedMembersError,
    PeerURLExistsError,
    TooManyLearnersError,
    UnhealthyClusterError,
    decode_conf_change_context,
    encode_conf_change_context,
)
from kvorum.raft.types import ConfChange, ConfChangeType


@pytest.fixture
def backend(tmp_path: Path) -> Iterator[Backend]:
    be = Backend(os.path.join(tmp_path, "db"))
    yield be
    be.close()


@pytest.fixture
def store(backend: Backend) -> MembershipStore:
    return MembershipStore(backend)


def url(n: int) -> str:
    return f"http://10.0.0.{n}:2380"


def started(n: int, *, learner: bool = False) -> Member:
    return Member(n, f"m{n}", (url(n),), (f"http://10.0.0.{n}:2379",), learner)


def unstarted(n: int, *, learner: bool = False) -> Member:
    return Member(n, "", (url(n),), (), learner)


def cc(
    kind: ConfChangeType, node_id: int, member: Member | None = None, promote: bool = False
) -> ConfChange:
    return ConfChange(kind, node_id, encode_conf_change_context(ConfChangeContext(member, promote)))


ADD, LEARNER, REMOVE, UPDATE = (
    ConfChangeType.ADD_NODE,
    ConfChangeType.ADD_LEARNER_NODE,
    ConfChangeType.REMOVE_NODE,
    ConfChangeType.UPDATE_NODE,
)


def test_etcd_texts_on_the_wire() -> None:
    wire = {cls: spec.grpc_text for cls, spec in ERRORS.items()}
    assert wire[MemberNotFoundError] == "etcdserver: member not found"
    assert wire[IDRemovedError] == "etcdserver: member not found"  # etcd maps both alike
    assert wire[MemberExistsError] == "etcdserver: member ID already exist"
    assert wire[PeerURLExistsError] == "etcdserver: Peer URLs already exists"
    assert wire[MemberNotLearnerError] == "etcdserver: can only promote a learner member"
    assert wire[TooManyLearnersError] == "etcdserver: too many learner members in cluster"
    assert wire[LearnerNotReadyError] == (
        "etcdserver: can only promote a learner member which is in sync with leader"
    )
    assert wire[NotEnoughStartedMembersError] == (
        "etcdserver: re-configuration failed due to not enough started members"
    )
    assert str(IDRemovedError()) == "membership: ID removed"
    assert ERRORS[MemberNotFoundError].grpc_code == "NOT_FOUND"


def test_context_codec_round_trips_and_refuses_unknown_flags() -> None:
    ctx = ConfChangeContext(started(4, learner=True), is_promote=False)
    assert decode_conf_change_context(encode_conf_change_context(ctx)) == ctx
    promote = ConfChangeContext(None, is_promote=True)
    assert decode_conf_change_context(encode_conf_change_context(promote)) == promote
    assert decode_conf_change_context(b"") == ConfChangeContext()
    with pytest.raises(ValueError):
        decode_conf_change_context(b"\x02")
    with pytest.raises(ValueError):
        decode_conf_change_context(b"\x00\xff\xff")


def test_add_list_update_attributes_remove(store: MembershipStore, backend: Backend) -> None:
    store.apply_conf_change(cc(ADD, 1, unstarted(1)))
    store.apply_conf_change(cc(ADD, 2, unstarted(2)))
    assert [m.id for m in store.members()] == [1, 2]
    assert not store.member(1).is_started  # type: ignore[union-attr]
    m = store.set_attributes(1, "infra1", ("http://10.0.0.1:2379",))
    assert m.is_started and m.peer_urls == (url(1),)
    members = store.apply_conf_change(cc(UPDATE, 2, Member(2, peer_urls=(url(22),))))
    assert members[1].peer_urls == (url(22),)
    members = store.apply_conf_change(cc(REMOVE, 2))
    assert [m.id for m in members] == [1]
    assert store.is_removed(2) and store.removed_ids() == (2,)
    store.set_cluster_id(0xC1)
    store.set_cluster_version("3.4.0")
    # Everything is in the backend: a fresh store over a reopened file sees the same.
    backend.batch.commit()
    again = MembershipStore(backend)
    assert again.members() == store.members()
    assert (again.cluster_id(), again.cluster_version()) == (0xC1, "3.4.0")
    assert again.removed_ids() == (2,)


@pytest.mark.parametrize(
    ("change", "error"),
    [
        (cc(ADD, 1, unstarted(1)), MemberExistsError),
        (cc(ADD, 9, Member(9, peer_urls=(url(1),))), PeerURLExistsError),
        (cc(ADD, 2, unstarted(2)), IDRemovedError),
        (cc(REMOVE, 2), IDRemovedError),
        (cc(UPDATE, 2, unstarted(2)), IDRemovedError),
        (cc(REMOVE, 7), MemberNotFoundError),
        (cc(UPDATE, 7, unstarted(7)), MemberNotFoundError),
        (cc(UPDATE, 1, Member(1, peer_urls=(url(3),))), PeerURLExistsError),
        (cc(ADD, 1, promote=True), MemberNotLearnerError),
        (cc(ADD, 7, promote=True), MemberNotFoundError),
        (cc(LEARNER, 8, unstarted(8, learner=True)), TooManyLearnersError),
    ],
)
def test_committed_changes_are_validated_with_etcds_rules(
    store: MembershipStore, change: ConfChange, error: type[MembershipError]
) -> None:
    store.apply_conf_change(cc(ADD, 1, started(1)))
    store.apply_conf_change(cc(ADD, 2, started(2)))
    store.apply_conf_change(cc(REMOVE, 2))
    store.apply_conf_change(cc(LEARNER, 3, unstarted(3, learner=True)))
    before = store.members()
    with pytest.raises(error):
        store.apply_conf_change(change)
    assert store.members() == before  # nothing written


def test_update_may_keep_its_own_urls_and_promotion_makes_a_voter(store: MembershipStore) -> None:
    store.apply_conf_change(cc(ADD, 1, started(1)))
    store.apply_conf_change(cc(UPDATE, 1, Member(1, peer_urls=(url(1), url(11)))))
    store.apply_conf_change(cc(LEARNER, 3, unstarted(3)))
    assert store.member(3) == unstarted(3, learner=True)  # the change type decides
    store.apply_conf_change(cc(ADD, 3, promote=True))
    assert store.member(3) == unstarted(3)
    # With the learner promoted, a new learner fits again.
    store.apply_conf_change(cc(LEARNER, 4, unstarted(4)))


def test_context_naming_another_member_is_refused(store: MembershipStore) -> None:
    with pytest.raises(ValueError):
        store.apply_conf_change(cc(ADD, 5, unstarted(6)))
    assert store.members() == ()


def test_rejected_changes_are_remembered_by_index(store: MembershipStore) -> None:
    assert not store.was_rejected(17)
    store.record_rejected(17)
    assert store.was_rejected(17) and not store.was_rejected(18)


# --- checks before proposing ---------------------------------------------------------------


def test_may_add_checks_ids_urls_learners(store: MembershipStore) -> None:
    store.apply_conf_change(cc(ADD, 1, started(1)))
    store.apply_conf_change(cc(ADD, 2, started(2)))
    store.apply_conf_change(cc(REMOVE, 2))
    active = {1}
    with pytest.raises(IDRemovedError):
        store.check_may_add(unstarted(2), self_id=1, active_ids=active)
    with pytest.raises(MemberExistsError):
        store.check_may_add(unstarted(1), self_id=1, active_ids=active)
    with pytest.raises(PeerURLExistsError):
        store.check_may_add(Member(5, peer_urls=(url(1),)), self_id=1, active_ids=active)
    store.check_may_add(unstarted(3, learner=True), self_id=1, active_ids=active)
    store.apply_conf_change(cc(LEARNER, 3, unstarted(3)))
    with pytest.raises(TooManyLearnersError):
        store.check_may_add(unstarted(4, learner=True), self_id=1, active_ids=active)


def test_strict_add_needs_a_started_quorum_and_connected_voters(store: MembershipStore) -> None:
    store.apply_conf_change(cc(ADD, 1, started(1)))
    # One started member may always grow to two (etcd: restoring a backup).
    store.check_may_add(unstarted(2), self_id=1, active_ids=set())
    store.apply_conf_change(cc(ADD, 2, unstarted(2)))
    # Two voters, one started: a third would need 2 of 3 started.
    with pytest.raises(NotEnoughStartedMembersError):
        store.check_may_add(unstarted(3), self_id=1, active_ids={2})
    store.check_may_add(unstarted(3), self_id=1, active_ids={2}, strict=False)
    store.check_may_add(unstarted(3, learner=True), self_id=1, active_ids=set())
    store.set_attributes(2, "m2", ())
    with pytest.raises(UnhealthyClusterError):
        store.check_may_add(unstarted(3), self_id=1, active_ids=set())
    store.check_may_add(unstarted(3), self_id=1, active_ids={2})


def test_strict_remove_keeps_an_active_quorum(store: MembershipStore) -> None:
    for n in (1, 2, 3):
        store.apply_conf_change(cc(ADD, n, started(n)))
    with pytest.raises(MemberNotFoundError):
        store.check_may_remove(9, self_id=1, active_ids={2, 3})
    # 3 is down: removing it is safe, it is not part of the active quorum.
    store.check_may_remove(3, self_id=1, active_ids={2})
    # 3 is down and we remove 2 (up): only 1 of the remaining 2 voters would be active
    # (etcd: "unhealthy cluster").
    with pytest.raises(UnhealthyClusterError):
        store.check_may_remove(2, self_id=1, active_ids={2})
    store.check_may_remove(2, self_id=1, active_ids={2, 3})
    store.check_may_remove(2, self_id=1, active_ids={2}, strict=False)


def test_strict_remove_needs_started_members_left(store: MembershipStore) -> None:
    store.apply_conf_change(cc(ADD, 1, started(1)))
    store.apply_conf_change(cc(ADD, 2, unstarted(2)))
    store.apply_conf_change(cc(ADD, 3, unstarted(3)))
    with pytest.raises(NotEnoughStartedMembersError):
        store.check_may_remove(1, self_id=2, active_ids={1, 3})


def test_may_promote_needs_a_learner_in_sync(store: MembershipStore) -> None:
    store.apply_conf_change(cc(ADD, 1, started(1)))
    store.apply_conf_change(cc(LEARNER, 2, unstarted(2)))
    with pytest.raises(MemberNotLearnerError):
        store.check_may_promote(1, learner_match_index=100, leader_match_index=100)
    with pytest.raises(MemberNotFoundError):
        store.check_may_promote(7, learner_match_index=100, leader_match_index=100)
    with pytest.raises(LearnerNotReadyError):
        store.check_may_promote(2, learner_match_index=89, leader_match_index=100)
    store.check_may_promote(2, learner_match_index=90, leader_match_index=100)
    store.check_may_promote(2, learner_match_index=None, leader_match_index=100)


def test_strict_promote_counts_the_learner_as_started(store: MembershipStore) -> None:
    store.apply_conf_change(cc(ADD, 1, started(1)))
    store.apply_conf_change(cc(ADD, 2, unstarted(2)))
    store.apply_conf_change(cc(ADD, 3, unstarted(3)))
    store.apply_conf_change(cc(LEARNER, 4, unstarted(4)))
    # 4 voters after promotion, quorum 3, started: 1 + the learner = 2.
    with pytest.raises(NotEnoughStartedMembersError):
        store.check_may_promote(4, learner_match_index=10, leader_match_index=10)
    store.check_may_promote(4, learner_match_index=10, leader_match_index=10, strict=False)
    store.set_attributes(2, "m2", ())
    store.check_may_promote(4, learner_match_index=10, leader_match_index=10)


# --- alarms ---------------------------------------------------------------------------------


def test_alarm_store_activate_get_deactivate(backend: Backend) -> None:
    alarms = AlarmStore(backend)
    assert alarms.get() == ()
    assert alarms.activate(2, AlarmType.NOSPACE) == AlarmMember(2, AlarmType.NOSPACE)
    alarms.activate(2, AlarmType.NOSPACE)  # raising twice keeps one
    alarms.activate(1, AlarmType.CORRUPT)
    assert alarms.get() == (
        AlarmMember(1, AlarmType.CORRUPT),
        AlarmMember(2, AlarmType.NOSPACE),
    )
    assert alarms.get(AlarmType.NOSPACE) == (AlarmMember(2, AlarmType.NOSPACE),)
    assert alarms.deactivate(2, AlarmType.NOSPACE) == AlarmMember(2, AlarmType.NOSPACE)
    assert alarms.deactivate(2, AlarmType.NOSPACE) is None
    assert alarms.get() == (AlarmMember(1, AlarmType.CORRUPT),)
