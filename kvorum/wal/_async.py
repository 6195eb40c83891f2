"""Run the WAL's blocking calls off the event loop, on one dedicated thread.

One thread, not a pool: WAL calls must happen in order, and a single writer keeps the
WAL's own state free of locks. The event loop keeps serving while fdatasync blocks.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TypeVar

from kvorum.raft.types import Entry, HardState
from kvorum.wal._wal import WAL

MAX_PENDING_CALLS = 64
_T = TypeVar("_T")


class AsyncWAL:
    """An asyncio face on a ``WAL``; it owns the WAL and closes it in ``close``.

    A cancelled ``await`` does not cancel the write: the worker finishes it, so the log
    never holds half a batch because a caller gave up waiting.
    """

    def __init__(self, wal: WAL, *, max_pending_calls: int = MAX_PENDING_CALLS) -> None:
        self._wal = wal
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="kvorum-wal")
        # Bounds the executor's otherwise unbounded queue; callers wait for a slot.
        self._slots = asyncio.Semaphore(max_pending_calls)

    @property
    def wal(self) -> WAL:
        return self._wal

    async def save(
        self, hard_state: HardState | None, entries: Sequence[Entry], *, must_sync: bool = True
    ) -> None:
        """``WAL.save`` on the worker thread; returns once the batch is durable."""
        batch = tuple(entries)  # the caller may reuse its list while we wait
        async with self._slots:
            await self._run(lambda: self._wal.save(hard_state, batch, must_sync=must_sync))

    async def save_snapshot_marker(self, term: int, index: int) -> None:
        async with self._slots:
            await self._run(lambda: self._wal.save_snapshot_marker(term, index))

    async def release_to(self, index: int) -> list[Path]:
        async with self._slots:
            return await self._run(lambda: self._wal.release_to(index))

    async def close(self) -> None:
        """Finish queued calls, close the WAL and stop the worker thread."""
        try:
            await self._run(self._wal.close)
        finally:
            self._executor.shutdown(wait=False)

    async def _run(self, call: Callable[[], _T]) -> _T:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, call)
