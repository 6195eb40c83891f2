"""Majority quorums over the voters of one configuration (Raft paper §5.2, §5.3).

kvorum changes membership one voter at a time (thesis §4.1), so a single majority
configuration is all the core needs; joint consensus would combine two of these.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping
from enum import IntEnum


class VoteResult(IntEnum):
    PENDING = 0
    LOST = 1
    WON = 2


def quorum_size(voter_count: int) -> int:
    """Smallest number of voters that forms a majority."""
    return voter_count // 2 + 1


def committed_index(match_indexes: Iterable[int]) -> int:
    """Largest index present in the logs of a majority, given one match index per voter.

    Sorting descending, the element at position n//2 is the highest index that
    n//2 + 1 voters have reached. An empty configuration commits nothing.
    """
    ms = sorted(match_indexes, reverse=True)
    if not ms:
        return 0
    return ms[len(ms) // 2]


def vote_result(voters: Collection[int], votes: Mapping[int, bool]) -> VoteResult:
    """WON when a majority granted, LOST when a majority can no longer grant."""
    if not voters:
        # An empty configuration elects nobody; such a node is not promotable anyway.
        return VoteResult.LOST
    granted = rejected = 0
    for v in voters:
        got = votes.get(v)
        if got is None:
            continue
        if got:
            granted += 1
        else:
            rejected += 1
    q = quorum_size(len(voters))
    if granted >= q:
        return VoteResult.WON
    if len(voters) - rejected >= q:
        return VoteResult.PENDING
    return VoteResult.LOST


def has_quorum(voters: Collection[int], present: Collection[int]) -> bool:
    """True when the voters found in ``present`` form a majority of ``voters``."""
    if not voters:
        return False
    return sum(1 for v in voters if v in present) >= quorum_size(len(voters))
