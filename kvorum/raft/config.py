"""Config: the tunables of one raft node, validated once at construction."""

from __future__ import annotations

from dataclasses import dataclass

from kvorum.raft.types import NONE


@dataclass(frozen=True, slots=True)
class Config:
    """Settings of one raft node; ticks are abstract time units driven by ``tick()``."""

    id: int
    election_tick: int = 10  # randomized timeout drawn from [election_tick, 2*election_tick)
    heartbeat_tick: int = 1
    applied: int = 0  # last applied index when restarting
    max_size_per_msg_bytes: int = 1 << 20
    max_committed_size_per_ready_bytes: int = 64 << 20
    max_uncommitted_entries_size_bytes: int = 0  # 0 = no limit; else proposals beyond are dropped
    max_inflight_msgs: int = 256
    max_inflight_bytes: int = 0  # 0 = no limit
    check_quorum: bool = True
    pre_vote: bool = True
    disable_proposal_forwarding: bool = False

    def __post_init__(self) -> None:
        if self.id == NONE:
            raise ValueError("raft config: id must not be 0 (0 means 'nobody')")
        if self.heartbeat_tick <= 0:
            raise ValueError("raft config: heartbeat_tick must be > 0")
        if self.election_tick <= self.heartbeat_tick:
            raise ValueError("raft config: election_tick must be > heartbeat_tick")
        if self.max_inflight_msgs <= 0:
            raise ValueError("raft config: max_inflight_msgs must be > 0")
        if self.max_inflight_bytes < 0 or self.max_uncommitted_entries_size_bytes < 0:
            raise ValueError("raft config: byte limits must be >= 0")
        if self.max_size_per_msg_bytes <= 0 or self.max_committed_size_per_ready_bytes <= 0:
            raise ValueError("raft config: message and ready size limits must be > 0")
        if self.applied < 0:
            raise ValueError("raft config: applied must be >= 0")
