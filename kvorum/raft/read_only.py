"""ReadIndex rounds on the leader (thesis §6.4), batched.

A read is linearizable if served at an index no lower than the leader's commit
index when the read arrived, once the leader has confirmed (by a heartbeat round
acknowledged by a quorum) that it was still the leader after the read arrived.

Batching: the core only hands out messages through ``Ready``, so every read that
arrives before the round's heartbeats leave in a Ready can safely join that round —
its heartbeats are sent after the read arrived. ``close_open`` is called when a
Ready takes the messages; later reads open a new round. A quorum of acks for a
round also confirms every earlier round (its heartbeats went out later).
"""

from __future__ import annotations

from collections import OrderedDict

MAX_PENDING_READS = 1 << 16
"""Bound on reads waiting for a heartbeat round; beyond it reads are dropped."""


class ReadRound:
    """One heartbeat round and the reads waiting for it."""

    __slots__ = ("acks", "ctx", "index", "requests")

    def __init__(self, ctx: bytes, index: int, leader_id: int) -> None:
        self.ctx = ctx
        # Invariant: index >= the commit index when any of ``requests`` arrived.
        self.index = index
        self.requests: list[tuple[bytes, int]] = []  # (request ctx, requester id)
        self.acks: set[int] = {leader_id}


class ReadOnly:
    """The leader's outstanding ReadIndex rounds, oldest first."""

    __slots__ = ("_next_round", "_open", "_pending_requests", "_rounds")

    def __init__(self) -> None:
        self._rounds: OrderedDict[bytes, ReadRound] = OrderedDict()
        self._open: ReadRound | None = None
        self._next_round = 1
        self._pending_requests = 0

    def __len__(self) -> int:
        return self._pending_requests

    def join(
        self, request_ctx: bytes, requester: int, committed: int, leader_id: int
    ) -> ReadRound | None:
        """Add a read to the open round; returns the round if it was opened just now.

        A newly opened round needs its heartbeats broadcast; an open one already has
        them waiting in the outgoing messages.
        """
        rnd = self._open
        opened = None
        if rnd is None:
            # Round contexts are distinct from application read contexts by the prefix.
            ctx = b"\x00rr" + self._next_round.to_bytes(8, "big")
            self._next_round += 1
            rnd = ReadRound(ctx, committed, leader_id)
            self._rounds[ctx] = rnd
            self._open = rnd
            opened = rnd
        elif committed > rnd.index:
            rnd.index = committed
        rnd.requests.append((request_ctx, requester))
        self._pending_requests += 1
        return opened

    def full(self) -> bool:
        return self._pending_requests >= MAX_PENDING_READS

    def close_open(self) -> None:
        """The open round's heartbeats are leaving now: later reads need a new round."""
        self._open = None

    def recv_ack(self, frm: int, ctx: bytes) -> set[int] | None:
        rnd = self._rounds.get(ctx)
        if rnd is None:
            return None
        rnd.acks.add(frm)
        return rnd.acks

    def advance(self, ctx: bytes) -> list[ReadRound]:
        """Release the round ``ctx`` and every earlier one (all confirmed by it)."""
        if ctx not in self._rounds:
            return []
        done: list[ReadRound] = []
        while self._rounds:
            key, rnd = self._rounds.popitem(last=False)
            done.append(rnd)
            self._pending_requests -= len(rnd.requests)
            if rnd is self._open:
                self._open = None
            if key == ctx:
                break
        return done

    def last_pending_ctx(self) -> bytes:
        """Context of the newest round, carried by regular heartbeats to retry it."""
        if not self._rounds:
            return b""
        return next(reversed(self._rounds))
