"""The RawNode surface: the Ready/advance protocol and what it refuses."""

from __future__ import annotations

import pytest

from kvorum.raft import (
    Entry,
    HardState,
    Message,
    MessageType,
    RaftError,
    SoftState,
    StateRole,
)
from tests.unit.raft.helpers import make_node, msg


def test_local_message_types_are_refused() -> None:
    raw, _ = make_node(1, (1, 2, 3))
    for t in (MessageType.HUP, MessageType.BEAT, MessageType.SNAP_STATUS):
        with pytest.raises(RaftError, match="local message"):
            raw.step(Message(t, to=1, frm=1))


def test_one_ready_outstanding_at_a_time() -> None:
    raw, st = make_node(1, (1,))
    raw.campaign()
    assert raw.has_ready()
    rd = raw.ready()
    assert not raw.has_ready()
    with pytest.raises(RaftError, match="advance"):
        raw.ready()
    raw.propose(b"meanwhile")  # input keeps working while the Ready is carried out
    st.append(rd.entries)
    raw.advance(rd)
    rd2 = raw.ready()
    assert [e.data for e in rd2.entries] == [b"meanwhile"]
    with pytest.raises(RaftError):
        raw.advance(rd)  # not the outstanding Ready


def test_ready_reports_soft_and_hard_state_changes() -> None:
    raw, st = make_node(1, (1,))
    assert not raw.has_ready()
    raw.campaign()
    rd = raw.ready()
    assert rd.soft_state == SoftState(leader=1, role=StateRole.LEADER)
    assert rd.hard_state == HardState(term=1, vote=1, commit=0)
    assert rd.must_sync and rd.entries == (Entry(1, 1),)
    st.append(rd.entries)
    st.set_hard_state(rd.hard_state)
    raw.advance(rd)
    rd = raw.ready()
    # Only the commit index moved: persisted, but no sync is demanded for it.
    assert rd.soft_state is None
    assert rd.hard_state == HardState(term=1, vote=1, commit=1)
    assert not rd.must_sync
    assert [e.index for e in rd.committed_entries] == [1]


def test_committed_entries_bounded_per_ready() -> None:
    raw, st = make_node(1, (1,), max_committed_size_per_ready_bytes=100)
    raw.campaign()
    rd = raw.ready()
    st.append(rd.entries)
    raw.advance(rd)
    for _ in range(10):
        raw.propose(b"x" * 34)  # 50 bytes with the entry overhead
    rd = raw.ready()
    st.append(rd.entries)
    raw.advance(rd)
    sizes = [len(rd.committed_entries)]  # the no-op, committed by now
    while raw.has_ready():
        rd = raw.ready()
        sizes.append(len(rd.committed_entries))
        raw.advance(rd)
    assert sum(sizes) == 11 and max(sizes) <= 3


def test_restart_with_applied_skips_applied_entries() -> None:
    raw, st = make_node(1, (1,))
    raw.campaign()
    for _ in range(3):
        raw.propose(b"p")
    while raw.has_ready():
        rd = raw.ready()
        st.append(rd.entries)
        if rd.hard_state:
            st.set_hard_state(rd.hard_state)
        raw.advance(rd)
    assert st.hard_state().commit == 4
    again, _ = make_node(1, storage=st, applied=2)
    assert again.status().applied == 2
    rd = again.ready()
    assert [e.index for e in rd.committed_entries] == [3, 4]


def test_vote_response_for_unknown_term_from_unknown_node_is_harmless() -> None:
    raw, _ = make_node(1, (1, 2, 3))
    raw.step(msg(MessageType.APP_RESP, 9, 1, term=0, index=5))
    assert raw.status().role == StateRole.FOLLOWER
