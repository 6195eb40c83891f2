"""Waiters woken by request id: how a proposer learns that its entry was applied.

The proposer registers its request id before proposing; whoever applies the entry
carrying that id (on this member) triggers it with the result. Ids that nobody
registered are ignored, since every member applies every entry but only the one that
proposed it waits.
"""

from __future__ import annotations

import asyncio

from kvorum.server.errors import TooManyRequestsError

__all__ = ["MAX_WAITERS", "Wait"]

MAX_WAITERS = 100_000
"""Requests in flight on one member at most; beyond this a new one is refused."""


class Wait:
    """A bounded map from request id to the future its requester awaits."""

    __slots__ = ("_futures", "_max_waiters")

    def __init__(self, *, max_waiters: int = MAX_WAITERS) -> None:
        if max_waiters <= 0:
            raise ValueError("max_waiters must be > 0")
        self._max_waiters = max_waiters
        self._futures: dict[int, asyncio.Future[object]] = {}

    def __len__(self) -> int:
        return len(self._futures)

    def __contains__(self, request_id: int) -> bool:
        return request_id in self._futures

    def register(self, request_id: int) -> asyncio.Future[object]:
        """A future resolved by ``trigger(request_id, ...)``; ids must be unique in flight."""
        if request_id in self._futures:
            raise ValueError(f"request id {request_id:x} is already waited on")
        if len(self._futures) >= self._max_waiters:
            raise TooManyRequestsError(f"{len(self._futures)} requests already waiting")
        future: asyncio.Future[object] = asyncio.get_running_loop().create_future()
        self._futures[request_id] = future
        return future

    def trigger(self, request_id: int, result: object) -> bool:
        """Resolve ``request_id`` with ``result``; False if nobody waits for it."""
        future = self._futures.pop(request_id, None)
        if future is None or future.done():
            return False
        future.set_result(result)
        return True

    def fail(self, request_id: int, error: BaseException) -> bool:
        """Resolve ``request_id`` with ``error`` raised in the waiter."""
        future = self._futures.pop(request_id, None)
        if future is None or future.done():
            return False
        future.set_exception(error)
        return True

    def cancel(self, request_id: int) -> None:
        """Forget ``request_id`` (its requester gave up); a later trigger is ignored."""
        future = self._futures.pop(request_id, None)
        if future is not None and not future.done():
            future.cancel()

    def fail_all(self, error: BaseException) -> None:
        """Resolve every waiter with ``error`` (the member is stopping)."""
        futures, self._futures = self._futures, {}
        for future in futures.values():
            if not future.done():
                future.set_exception(error)
