"""The batched LMDB write transaction the apply loop writes through.

Why batch: an LMDB commit is the expensive step (page writes, meta page flip). The server applies
committed raft entries one after another; grouping many of them into one LMDB transaction turns
thousands of commits per second into a handful, exactly as etcd's batchTx does for bolt.

Invariant kept by the callers (the apply layer): every applied entry writes its data AND the
consistent index through `write()` before the batch commits, so whatever LMDB holds after a
commit corresponds exactly to the stored applied index; a crash loses only a suffix of applied
entries, which the WAL replays.

No threads or timers live here: the owner calls `maybe_commit()` (or `commit()`) when it wants,
and the interval policy reads the injected clock.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import lmdb

#: etcd's defaults: commit every 100 ms or every 10 000 pending writes, whichever comes first.
DEFAULT_MAX_BATCH_COUNT = 10_000
DEFAULT_MAX_BATCH_INTERVAL_S = 0.1


class BatchTx:
    """One open LMDB write transaction shared by a run of writes, committed by policy."""

    def __init__(
        self,
        env: Callable[[], lmdb.Environment],
        *,
        max_batch_count: int = DEFAULT_MAX_BATCH_COUNT,
        max_batch_interval_s: float = DEFAULT_MAX_BATCH_INTERVAL_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if max_batch_count < 1:
            raise ValueError("max_batch_count must be >= 1")
        if max_batch_interval_s < 0:
            raise ValueError("max_batch_interval_s must be >= 0")
        self._env = env
        self.max_batch_count = max_batch_count
        self.max_batch_interval_s = max_batch_interval_s
        self._clock = clock
        self._txn: lmdb.Transaction[bytes] | None = None
        self._owner_thread = 0
        self._opened_at_s = 0.0
        self._pending_count = 0
        self.commit_count = 0
        #: Called with each LMDB commit's duration in seconds (a metrics histogram).
        self.commit_observer: Callable[[float], None] | None = None

    @property
    def pending_count(self) -> int:
        """Writes made through the open transaction since it was begun."""
        return self._pending_count

    @property
    def is_open(self) -> bool:
        return self._txn is not None

    def write(self) -> lmdb.Transaction[bytes]:
        """The open write transaction (begun on first use); counts one pending write."""
        txn = self._txn
        if txn is None:
            txn = self._env().begin(write=True)
            self._txn = txn
            self._owner_thread = threading.get_ident()
            self._opened_at_s = self._clock()
        self._pending_count += 1
        return txn

    def open_for_this_thread(self) -> lmdb.Transaction[bytes] | None:
        """The open transaction if this thread began it, else None.

        LMDB write transactions belong to the thread that began them; readers on that thread
        read through it so they see applied-but-uncommitted writes (etcd's read buffer), other
        threads read the last committed batch.
        """
        if self._txn is not None and self._owner_thread == threading.get_ident():
            return self._txn
        return None

    def should_commit(self) -> bool:
        if self._txn is None:
            return False
        if self._pending_count >= self.max_batch_count:
            return True
        return self._clock() - self._opened_at_s >= self.max_batch_interval_s

    def maybe_commit(self) -> bool:
        """Commit if the count or interval limit is reached; True if it committed."""
        if self.should_commit():
            self.commit()
            return True
        return False

    def commit(self) -> None:
        """Commit the open transaction, if any. Durable only after `Backend.sync()`."""
        txn = self._txn
        if txn is None:
            return
        self._txn = None
        self._pending_count = 0
        started_s = time.perf_counter()
        txn.commit()
        self.commit_count += 1
        if self.commit_observer is not None:
            self.commit_observer(time.perf_counter() - started_s)

    def abort(self) -> None:
        """Drop every uncommitted write (the caller must reload any state it cached)."""
        txn = self._txn
        if txn is None:
            return
        self._txn = None
        self._pending_count = 0
        txn.abort()
