"""Linearizable reads, batched: one ReadIndex round serves every read waiting at that moment.

A read goes through three stages (thesis §6.4): it waits for the next round; the round
is issued to the core with a fresh context; the core answers with a ReadState (the
leader's commit index once it confirmed its leadership after the read arrived); the
read is released once this member has applied that index. A round whose answer does
not come (lost message, leader change) is re-issued every ``retry_s`` with the same
context, as etcd does; the first answer wins and later duplicates are ignored.
"""

from __future__ import annotations

import asyncio
import heapq
from dataclasses import dataclass, field

from kvorum.raft import ReadState
from kvorum.server.errors import TooManyRequestsError

__all__ = ["DEFAULT_MAX_WAITING_READS", "DEFAULT_READ_RETRY_S", "ReadIndexBatcher"]

DEFAULT_MAX_WAITING_READS = 10_000
DEFAULT_READ_RETRY_S = 0.5


@dataclass(slots=True)
class _Round:
    futures: list[asyncio.Future[int]]
    issued_at_s: float


@dataclass(order=True, slots=True)
class _Released:
    index: int
    seq: int
    futures: list[asyncio.Future[int]] = field(compare=False)


class ReadIndexBatcher:
    """Reads waiting for a round, rounds waiting for an answer, answers waiting for apply."""

    __slots__ = ("_max_waiting", "_next", "_released", "_retry_s", "_rounds", "_seq", "_waiting")

    def __init__(
        self,
        *,
        first_ctx: int = 1,
        max_waiting: int = DEFAULT_MAX_WAITING_READS,
        retry_s: float = DEFAULT_READ_RETRY_S,
    ) -> None:
        if max_waiting <= 0 or retry_s <= 0:
            raise ValueError("max_waiting and retry_s must be > 0")
        self._max_waiting = max_waiting
        self._retry_s = retry_s
        self._next: list[asyncio.Future[int]] = []  # reads for the next round
        self._rounds: dict[bytes, _Round] = {}  # issued, unanswered
        self._released: list[_Released] = []  # answered; heap by the index they need
        self._waiting = 0  # reads in any stage, for the bound
        self._seq = first_ctx

    def __len__(self) -> int:
        return self._waiting

    def add(self) -> asyncio.Future[int]:
        """A future resolved with the read index once it is safe to read locally."""
        if self._waiting >= self._max_waiting:
            raise TooManyRequestsError(f"{self._waiting} linearizable reads already waiting")
        future: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        self._next.append(future)
        self._waiting += 1
        return future

    def start_round(self, now_s: float) -> bytes | None:
        """The context of a new round for every read waiting, or None if none is."""
        futures = [f for f in self._next if not f.done()]
        self._waiting -= len(self._next) - len(futures)
        self._next = []
        if not futures:
            return None
        ctx = self._seq.to_bytes(8, "big")
        self._seq += 1
        self._rounds[ctx] = _Round(futures, now_s)
        return ctx

    def due_retries(self, now_s: float) -> list[bytes]:
        """Contexts of unanswered rounds to issue again; rounds nobody awaits are dropped."""
        due: list[bytes] = []
        for ctx, rnd in list(self._rounds.items()):
            live = [f for f in rnd.futures if not f.done()]
            if not live:
                del self._rounds[ctx]
                self._waiting -= len(rnd.futures)
                continue
            if now_s - rnd.issued_at_s >= self._retry_s:
                rnd.issued_at_s = now_s
                due.append(ctx)
        return due

    def on_read_state(self, rs: ReadState, applied_index: int) -> None:
        """The core answered a round; its reads wait until ``rs.index`` is applied."""
        rnd = self._rounds.pop(rs.request_ctx, None)
        if rnd is None:
            return  # a duplicate answer to a re-issued round, or not ours
        heapq.heappush(self._released, _Released(rs.index, self._seq, rnd.futures))
        self._seq += 1
        self.on_applied(applied_index)

    def on_applied(self, applied_index: int) -> None:
        """Resolve every answered read whose index this member has now applied."""
        heap = self._released
        while heap and heap[0].index <= applied_index:
            released = heapq.heappop(heap)
            self._waiting -= len(released.futures)
            for future in released.futures:
                if not future.done():
                    future.set_result(released.index)

    def has_unissued(self) -> bool:
        return bool(self._next)

    def fail_all(self, error: BaseException) -> None:
        groups = [self._next, *(r.futures for r in self._rounds.values())]
        groups += [r.futures for r in self._released]
        self._next, self._rounds, self._released, self._waiting = [], {}, [], 0
        for futures in groups:
            for future in futures:
                if not future.done():
                    future.set_exception(error)
