"""The small pieces: quorum arithmetic, progress and in-flight tracking, the log."""

from __future__ import annotations

import pytest

from kvorum.raft import CompactedError, ConfState, Entry, MemoryStorage, ProgressState, RaftError
from kvorum.raft.log import RaftLog
from kvorum.raft.progress import Inflights, Progress
from kvorum.raft.quorum import VoteResult, committed_index, has_quorum, vote_result


def test_committed_index_is_the_majority_median_5_3() -> None:
    assert committed_index([5]) == 5
    assert committed_index([5, 3]) == 3
    assert committed_index([5, 4, 1]) == 4
    assert committed_index([9, 2, 7, 1]) == 2  # 3 of 4 have >= 2
    assert committed_index([9, 8, 7, 1, 1]) == 7
    assert committed_index([]) == 0


def test_vote_result_5_2() -> None:
    voters = (1, 2, 3)
    assert vote_result(voters, {1: True}) == VoteResult.PENDING
    assert vote_result(voters, {1: True, 2: True}) == VoteResult.WON
    assert vote_result(voters, {1: True, 2: False}) == VoteResult.PENDING
    assert vote_result(voters, {1: True, 2: False, 3: False}) == VoteResult.LOST
    assert vote_result(voters, {1: True, 4: True, 5: True}) == VoteResult.PENDING  # not voters
    assert vote_result((1,), {1: True}) == VoteResult.WON


def test_has_quorum() -> None:
    assert has_quorum((1, 2, 3), {1, 2})
    assert not has_quorum((1, 2, 3, 4), {1, 2})
    assert not has_quorum((1, 2, 3), {1, 9, 8})


def test_inflights_count_and_bytes() -> None:
    inf = Inflights(3, max_bytes=100)
    inf.add(5, 40)
    inf.add(7, 40)
    assert not inf.full()
    inf.add(9, 30)
    assert inf.full() and inf.bytes == 110
    inf.free_le(7)
    assert len(inf) == 1 and inf.bytes == 30 and not inf.full()
    inf.free_first_one()
    assert len(inf) == 0 and inf.bytes == 0


def test_progress_transitions() -> None:
    pr = Progress(11, Inflights(2))
    assert pr.state == ProgressState.PROBE and not pr.is_paused()
    pr.probe_sent = True
    assert pr.is_paused()
    assert pr.maybe_update(10) and not pr.is_paused()
    pr.become_replicate()
    assert pr.next == 11
    pr.inflights.add(12, 0)
    pr.next = 13
    # A rejection of something already matched is stale.
    assert not pr.maybe_decr_to(9, 9)
    assert pr.maybe_decr_to(12, 11)
    assert pr.next == 11
    pr.become_snapshot(50)
    assert pr.is_paused()
    pr.become_probe()
    assert pr.next == 51


def test_progress_probe_backoff_uses_hint() -> None:
    pr = Progress(101, Inflights(4))
    assert not pr.maybe_decr_to(50, 10)  # not the probe we sent (next-1 == 100)
    assert pr.maybe_decr_to(100, 40)
    assert pr.next == 41
    assert pr.maybe_decr_to(40, 0)
    assert pr.next == 1  # never below match + 1


def _log(n: int) -> RaftLog:
    st = MemoryStorage(ConfState((1,)))
    st.append([Entry(1, i) for i in range(1, n + 1)])
    return RaftLog(st, 1 << 20)


def test_log_spans_storage_and_unstable() -> None:
    log = _log(5)
    log.append([Entry(2, 6), Entry(2, 7)])
    assert (log.first_index(), log.last_index(), log.stable_last_index()) == (1, 7, 5)
    assert [e.index for e in log.slice(4, 8, None)] == [4, 5, 6, 7]
    assert log.term(7) == 2
    assert log.stable_to(7, 2)
    assert log.stable_last_index() == 7


def test_log_stable_to_ignores_replaced_entries() -> None:
    log = _log(2)
    log.append([Entry(2, 3), Entry(2, 4)])
    log.append([Entry(3, 4)])  # entry 4 replaced before the old one was persisted
    assert not log.stable_to(4, 2)
    assert log.last_index() == 4 and log.term(4) == 3


def test_log_never_overwrites_committed() -> None:
    log = _log(5)
    log.commit_to(4)
    with pytest.raises(RaftError):
        log.append([Entry(2, 3)])
    with pytest.raises(RaftError):
        log.commit_to(9)


def test_log_commit_requires_term_match_5_4_2() -> None:
    log = _log(3)
    log.append([Entry(2, 4)])
    assert not log.maybe_commit(3, 2)  # entry 3 has term 1
    assert log.maybe_commit(4, 2)
    assert log.committed == 4


def test_log_compacted_slice_raises() -> None:
    log = _log(6)
    log.storage.create_snapshot(4, None, b"")  # type: ignore[attr-defined]
    log.storage.compact(4)  # type: ignore[attr-defined]
    with pytest.raises(CompactedError):
        log.slice(3, 5, None)


def test_log_find_conflict_by_term() -> None:
    st = MemoryStorage(ConfState((1,)))
    st.append([Entry(t, i + 1) for i, t in enumerate([1, 1, 3, 3, 5])])
    log = RaftLog(st, 1 << 20)
    assert log.find_conflict_by_term(5, 4) == (4, 3)
    assert log.find_conflict_by_term(5, 2) == (2, 1)
    assert log.find_conflict_by_term(5, 0) == (0, 0)
    assert log.find_conflict_by_term(3, 3) == (3, 3)


def test_config_validation() -> None:
    from kvorum.raft import Config

    with pytest.raises(ValueError):
        Config(id=0)
    with pytest.raises(ValueError):
        Config(id=1, election_tick=1, heartbeat_tick=1)
    with pytest.raises(ValueError):
        Config(id=1, max_inflight_msgs=0)
