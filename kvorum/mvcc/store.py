"""The multi-version key-value store: etcd's revisions and semantics on LMDB cursors.

Design (memory bounded, restart in O(1)):

* Nothing per key or per revision is held in Python memory. The only in-memory state is four
  integers (current revision, requested and finished compaction revision, compaction progress),
  all mirrored in the `meta` bucket. Reopening a store reads them and is done.
* Bucket `key_index` is the primary store. Its keys are `escape(key) + SEP + revision` (see
  `_codec`), so every revision of a user key is adjacent and ordered, and user keys are in
  byte order. Its values are the full put record (create revision, version, lease, value) or
  a one-byte tombstone. A range at revision R is one cursor walk: for each user key take the
  newest entry with main revision <= R, skip the key if that entry is a tombstone. Keys with a
  long uncompacted history are crossed with one B-tree seek instead of a walk.
* Bucket `key` is the revision log: `revision -> kind + user key`, appended in revision order.
  Watch catch-up (`events_since`), `hash_kv` and compaction walk it in revision order.
* A write (put, delete that deletes something, txn with writes) takes main revision
  `current + 1`; its i-th change takes sub revision i. Writes go into the backend's open batch
  transaction; reads on the apply thread read through that same transaction, so they see every
  applied write whether or not the batch has been committed yet.

Long keys: LMDB keys are at most 511 bytes. A user key whose index key would be longer is
stored in the index's spill form (a fixed-length escaped prefix, a hash of the key, the
revision; the record carries the full key; see `_codec`), so keys of any length work, as in
etcd. Keys that fit keep the plain form, so stores written before spill keys existed read
unchanged. Range walks take a prefix zone holding spill keys as one sorted unit (`_index`).

Semantics follow etcd 3.4: `mvcc/kvstore_txn.go` for revisions and ranges, the v3 applier for
the request-level rules (range filters, sort and limit; put flags; txn compare / check / apply
order), `mvcc/kvstore_compaction.go` and `key_index.go` for what compaction keeps.

Compaction of revision C keeps, per key, the newest version at or below C if it is not a
tombstone, and removes the rest at or below C, incrementally in bounded batches that walk the
revision log (see `_compaction`), so writers are never held up for long. Reads are checked
against the requested compaction revision at once, as etcd does.

Module map: `_codec` byte layouts, `_index` cursor reads of the key index, `_compaction` the
revision-log walks of compaction and HashKV, this module the store's state, the request-level
rules (range filters/sort/limit, put flags, txn compare/check/apply) and the write path.
"""

from __future__ import annotations

import contextlib
import struct
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from kvorum.backend import Backend, schema
from kvorum.mvcc import _codec as codec
from kvorum.mvcc._compaction import compact_batch, hash_history
from kvorum.mvcc._index import KeyIndex, in_range
from kvorum.mvcc.errors import (
    CompactedError,
    FutureRevError,
    KeyNotFoundError,
    LeaseNotFoundError,
)
from kvorum.mvcc.types import (
    Compare,
    CompareResult,
    CompareTarget,
    DeleteRangeRequest,
    DeleteRangeResponse,
    Event,
    EventBatch,
    EventType,
    KeyValue,
    PutRequest,
    PutResponse,
    RangeRequest,
    RangeResponse,
    RequestOp,
    ResponseOp,
    SortOrder,
    SortTarget,
    TxnRequest,
    TxnResponse,
)

if TYPE_CHECKING:
    import lmdb

#: a fresh etcd cluster reports revision 1: revision 1 is the empty store.
FIRST_REVISION = 1
#: no compaction yet (etcd's compactMainRev starts at -1).
NO_COMPACTION = -1
#: revision-log entries handled per `compact_step` (etcd uses 1000 keys per batch).
DEFAULT_COMPACT_BATCH = 1000
#: revision-log entries examined per `events_since` call.
DEFAULT_EVENTS_LIMIT = 1000

_I64 = struct.Struct(">q")
_ZERO_KV = KeyValue(b"", 0, 0, 0, b"", 0)

_SORT_KEYS: dict[SortTarget, Callable[[KeyValue], bytes | int]] = {
    SortTarget.KEY: lambda kv: kv.key,
    SortTarget.VERSION: lambda kv: kv.version,
    SortTarget.CREATE: lambda kv: kv.create_revision,
    SortTarget.MOD: lambda kv: kv.mod_revision,
    SortTarget.VALUE: lambda kv: kv.value,
}


@dataclass(slots=True)
class _Plan:
    """The branch a txn takes, decided before any write (etcd's txn path)."""

    succeeded: bool
    ops: tuple[RequestOp, ...]
    nested: list[_Plan] = field(default_factory=list)


class _Writer:
    """The changes of one write txn: one main revision, one sub revision per change."""

    __slots__ = ("begin_rev", "events", "main", "sub", "txn")

    def __init__(self, txn: lmdb.Transaction[bytes], begin_rev: int) -> None:
        self.txn = txn
        self.begin_rev = begin_rev
        self.main = begin_rev + 1
        self.sub = 0
        self.events: list[Event] = []

    @property
    def read_rev(self) -> int:
        """Revision reads inside the txn see: its own writes once it has made any."""
        return self.main if self.sub else self.begin_rev


class MvccStore:
    """etcd's KV semantics over a `Backend`. Not thread-safe: one apply thread writes."""

    def __init__(
        self,
        backend: Backend,
        *,
        lease_exists: Callable[[int], bool] | None = None,
    ) -> None:
        self._backend = backend
        self._lease_exists = lease_exists
        self._index = KeyIndex(lambda: backend.db(schema.KEY_INDEX), backend.max_key_size)
        self._rev = FIRST_REVISION
        self._compact_rev = NO_COMPACTION
        self._finished_compact_rev = NO_COMPACTION
        self._compact_progress = codec.rev_bytes(0, 0)
        self.reload()

    # --- state ----------------------------------------------------------------------------

    def reload(self) -> None:
        """Read the revision state from `meta` (at open, and after a batch was aborted)."""
        meta = self._backend.db(schema.META)
        with self._backend.view() as txn:
            self._rev = _read_i64(txn.get(schema.META_CURRENT_REVISION, db=meta), FIRST_REVISION)
            self._compact_rev = _read_i64(
                txn.get(schema.META_SCHEDULED_COMPACT, db=meta), NO_COMPACTION
            )
            self._finished_compact_rev = _read_i64(
                txn.get(schema.META_FINISHED_COMPACT, db=meta), NO_COMPACTION
            )
            progress = txn.get(schema.META_COMPACT_PROGRESS, db=meta)
        self._compact_progress = progress if progress is not None else codec.rev_bytes(0, 0)

    @property
    def current_revision(self) -> int:
        return self._rev

    @property
    def compact_revision(self) -> int:
        """The latest compaction revision requested; -1 if none (reads below it fail)."""
        return self._compact_rev

    @property
    def finished_compact_revision(self) -> int:
        """Revisions at or below this are physically compacted."""
        return self._finished_compact_rev

    @property
    def compaction_pending(self) -> bool:
        return self._finished_compact_rev < self._compact_rev

    # --- reads ----------------------------------------------------------------------------

    def range(self, req: RangeRequest) -> RangeResponse:
        txn = self._backend.batch.open_for_this_thread()
        if txn is not None:  # the apply thread's hot path, without context managers
            return self._range(txn, req, self._rev)
        with self._view() as (ro, cur_rev):
            return self._range(ro, req, cur_rev)

    @contextlib.contextmanager
    def _view(self) -> Iterator[tuple[lmdb.Transaction[bytes], int]]:
        """A read transaction and the current revision as that transaction sees it.

        On the apply thread that is the open batch and `current_revision`; another thread
        reads the last committed batch, whose revision is the one stored with it.
        """
        with self._backend.view() as txn:
            if txn is self._backend.batch.open_for_this_thread():
                yield txn, self._rev
            else:
                raw = txn.get(schema.META_CURRENT_REVISION, db=self._backend.db(schema.META))
                yield txn, _read_i64(raw, FIRST_REVISION)

    def get(self, key: bytes, revision: int = 0) -> KeyValue | None:
        """The key's version at `revision` (0 = current); None if absent then."""
        resp = self.range(RangeRequest(key, revision=revision))
        return resp.kvs[0] if resp.kvs else None

    def _range(
        self, txn: lmdb.Transaction[bytes], req: RangeRequest, cur_rev: int
    ) -> RangeResponse:
        """etcd's applier Range: filters, sort and limit over the mvcc range at `cur_rev`."""
        limit = req.limit
        if (
            req.sort_order != SortOrder.NONE
            or req.min_mod_revision
            or req.max_mod_revision
            or req.min_create_revision
            or req.max_create_revision
        ):
            limit = 0  # everything is fetched; sorting and filtering come before the limit
        if limit > 0:
            limit += 1  # one extra tells whether there is more
        kvs, count, rev = self._range_keys(
            txn, req.key, req.range_end, req.revision, limit, req.count_only, cur_rev
        )
        # Filters apply after the count: etcd's count ignores them, as it ignores the limit.
        if req.max_mod_revision:
            kvs = [kv for kv in kvs if kv.mod_revision <= req.max_mod_revision]
        if req.min_mod_revision:
            kvs = [kv for kv in kvs if kv.mod_revision >= req.min_mod_revision]
        if req.max_create_revision:
            kvs = [kv for kv in kvs if kv.create_revision <= req.max_create_revision]
        if req.min_create_revision:
            kvs = [kv for kv in kvs if kv.create_revision >= req.min_create_revision]
        order = req.sort_order
        if req.sort_target != SortTarget.KEY and order == SortOrder.NONE:
            # etcd: results come in key order, so a non-key target with no order means ASCEND.
            # Surprising but etcd's: with a limit and no filter, only the first limit+1 keys
            # (fetched above in key order) get sorted. Clients send an order with a target.
            order = SortOrder.ASCEND
        if order != SortOrder.NONE:
            # Stable sort: equal targets stay in key order (etcd's sort is unstable there).
            kvs.sort(key=_SORT_KEYS[req.sort_target], reverse=order == SortOrder.DESCEND)
        more = False
        if req.limit > 0 and len(kvs) > req.limit:
            kvs = kvs[: req.limit]
            more = True
        if req.keys_only:
            kvs = [
                KeyValue(kv.key, kv.create_revision, kv.mod_revision, kv.version, b"", kv.lease)
                for kv in kvs
            ]
        return RangeResponse(revision=rev, kvs=tuple(kvs), count=count, more=more)

    def _range_keys(
        self,
        txn: lmdb.Transaction[bytes],
        key: bytes,
        end: bytes,
        rev: int,
        limit: int,
        count_only: bool,
        cur_rev: int,
    ) -> tuple[list[KeyValue], int, int]:
        """etcd's mvcc rangeKeys: (kvs up to limit, count of all matches, header revision)."""
        if rev > cur_rev:
            raise FutureRevError
        if rev <= 0:
            rev = cur_rev
        if rev < self._compact_rev:
            raise CompactedError
        kvs, count = self._index.walk(txn, key, end, rev, limit, collect=not count_only)
        return kvs, count, cur_rev

    # --- writes ---------------------------------------------------------------------------

    def put(self, req: PutRequest) -> PutResponse:
        txn = self._backend.batch.write()
        # etcd checks the lease before it opens the write txn, then the ignore_* flags.
        self._check_lease(req.lease)
        writer = _Writer(txn, self._rev)
        try:
            resp = self._put(writer, req)
        finally:
            # Whatever reached the batch gets its revision, so state stays self-consistent.
            self._finish(writer)
        return PutResponse(resp.revision, resp.prev_kv, tuple(writer.events))

    def delete_range(self, req: DeleteRangeRequest) -> DeleteRangeResponse:
        txn = self._backend.batch.write()
        writer = _Writer(txn, self._rev)
        try:
            resp = self._delete(writer, req)
        finally:
            self._finish(writer)
        return DeleteRangeResponse(resp.revision, resp.deleted, resp.prev_kvs, tuple(writer.events))

    def txn(self, req: TxnRequest) -> TxnResponse:
        """Compares, then one branch (nested txns included), all in one revision."""
        if not _txn_writes(req):
            with self._view() as (ro, cur_rev):
                plan = self._plan(ro, req, cur_rev)
                self._check(ro, plan, cur_rev, check_puts=False)
                resp = self._apply_plan(_Writer(ro, cur_rev), plan)
            return TxnResponse(cur_rev, resp.succeeded, resp.responses)
        txn = self._backend.batch.write()
        plan = self._plan(txn, req, self._rev)
        self._check(txn, plan, self._rev, check_puts=True)
        writer = _Writer(txn, self._rev)
        try:
            # Checks passed, so only an invariant breach can raise here; etcd panics then.
            resp = self._apply_plan(writer, plan)
        finally:
            self._finish(writer)
        return TxnResponse(writer.read_rev, resp.succeeded, resp.responses, tuple(writer.events))

    def _finish(self, writer: _Writer) -> None:
        if writer.sub == 0:
            return
        self._rev = writer.main
        writer.txn.put(
            schema.META_CURRENT_REVISION,
            _I64.pack(self._rev),
            db=self._backend.db(schema.META),
        )

    def _check_lease(self, lease: int) -> None:
        if lease != 0 and self._lease_exists is not None and not self._lease_exists(lease):
            raise LeaseNotFoundError

    def _put(self, w: _Writer, req: PutRequest) -> PutResponse:
        cur = w.txn.cursor(db=self._backend.db(schema.KEY_INDEX))
        latest = self._index.newest(cur, req.key, w.main)
        prev: KeyValue | None = None
        if latest is not None and latest[1][0] == codec.KIND_PUT:
            prev = codec.decode_kv(latest[0], latest[1])
        if (req.ignore_value or req.ignore_lease) and prev is None:
            raise KeyNotFoundError
        value = prev.value if req.ignore_value and prev is not None else req.value
        lease = prev.lease if req.ignore_lease and prev is not None else req.lease
        if prev is None:
            create, version = w.main, 1
        else:
            create, version = prev.create_revision, prev.version + 1
        revb = codec.rev_bytes(w.main, w.sub)
        w.txn.put(
            codec.index_prefix(req.key) + revb,
            codec.put_record(
                create, version, lease, value, req.key if codec.is_long(req.key) else None
            ),
            db=self._backend.db(schema.KEY_INDEX),
        )
        w.txn.put(
            revb, bytes([codec.KIND_PUT]) + req.key, db=self._backend.db(schema.KEY), append=True
        )
        w.sub += 1
        kv = KeyValue(req.key, create, w.main, version, value, lease)
        event_prev = prev
        if latest is not None and codec.rev_main(latest[0]) > w.begin_rev:
            # Written earlier in this txn: the watcher's prev_kv is the state before the txn.
            event_prev = self._index.live(w.txn, req.key, w.begin_rev)
        w.events.append(Event(EventType.PUT, kv, event_prev))
        return PutResponse(w.main, prev if req.prev_kv else None)

    def _delete(self, w: _Writer, req: DeleteRangeRequest) -> DeleteRangeResponse:
        live, _count = self._index.walk(w.txn, req.key, req.range_end, w.read_rev, 0, collect=True)
        index_db = self._backend.db(schema.KEY_INDEX)
        key_db = self._backend.db(schema.KEY)
        for kv in live:
            revb = codec.rev_bytes(w.main, w.sub)
            w.txn.put(codec.index_prefix(kv.key) + revb, codec.TOMBSTONE_RECORD, db=index_db)
            w.txn.put(revb, bytes([codec.KIND_TOMBSTONE]) + kv.key, db=key_db, append=True)
            w.sub += 1
            event_prev: KeyValue | None = kv
            if kv.mod_revision > w.begin_rev:
                event_prev = self._index.live(w.txn, kv.key, w.begin_rev)
            w.events.append(Event(EventType.DELETE, KeyValue(kv.key, 0, w.main, 0), event_prev))
        rev = w.main if w.sub else w.begin_rev
        return DeleteRangeResponse(rev, len(live), tuple(live) if req.prev_kv else ())

    # --- txn ------------------------------------------------------------------------------

    def _plan(self, txn: lmdb.Transaction[bytes], req: TxnRequest, rev: int) -> _Plan:
        """Evaluate every compare on the path before any write (nested ones included)."""
        ok = all(self._compare(txn, c, rev) for c in req.compare)
        plan = _Plan(ok, req.success if ok else req.failure)
        plan.nested = [self._plan(txn, op, rev) for op in plan.ops if isinstance(op, TxnRequest)]
        return plan

    def _compare(self, txn: lmdb.Transaction[bytes], c: Compare, rev: int) -> bool:
        kvs, _count = self._index.walk(txn, c.key, c.range_end, rev, 0, collect=True)
        if not kvs:
            # A missing key has no value, not an empty one: value compares on it always fail.
            if c.target == CompareTarget.VALUE:
                return False
            return _compare_kv(c, _ZERO_KV)
        return all(_compare_kv(c, kv) for kv in kvs)

    def _check(
        self, txn: lmdb.Transaction[bytes], plan: _Plan, rev: int, *, check_puts: bool
    ) -> None:
        """etcd's checkRequests: fail the whole txn before any write."""
        nested = iter(plan.nested)
        for op in plan.ops:
            if isinstance(op, TxnRequest):
                self._check(txn, next(nested), rev, check_puts=check_puts)
            elif isinstance(op, PutRequest) and check_puts:
                needs_prev = op.ignore_value or op.ignore_lease
                if needs_prev and self._index.live(txn, op.key, rev) is None:
                    raise KeyNotFoundError
                self._check_lease(op.lease)
            elif isinstance(op, RangeRequest) and op.revision != 0:
                if op.revision > rev:
                    raise FutureRevError
                if op.revision < self._compact_rev:
                    raise CompactedError

    def _apply_plan(self, w: _Writer, plan: _Plan) -> TxnResponse:
        nested = iter(plan.nested)
        responses: list[ResponseOp] = []
        for op in plan.ops:
            if isinstance(op, RangeRequest):
                responses.append(self._range(w.txn, op, w.read_rev))
            elif isinstance(op, PutRequest):
                responses.append(self._put(w, op))
            elif isinstance(op, DeleteRangeRequest):
                responses.append(self._delete(w, op))
            else:
                # etcd leaves a nested txn response's header revision at zero.
                inner = self._apply_plan(w, next(nested))
                responses.append(TxnResponse(0, inner.succeeded, inner.responses))
        return TxnResponse(w.read_rev, plan.succeeded, tuple(responses))

    # --- compaction -----------------------------------------------------------------------

    def compact(self, revision: int) -> int:
        """Record a compaction at `revision`; returns the current revision (etcd's header).

        Reads below `revision` fail from now on; `compact_step` removes the data.
        """
        if revision <= self._compact_rev:
            raise CompactedError
        if revision > self._rev:
            raise FutureRevError
        txn = self._backend.batch.write()
        self._compact_rev = revision
        txn.put(
            schema.META_SCHEDULED_COMPACT,
            _I64.pack(revision),
            db=self._backend.db(schema.META),
        )
        return self._rev

    def compact_step(self, max_revisions: int = DEFAULT_COMPACT_BATCH) -> bool:
        """Compact up to `max_revisions` revision-log entries; True once nothing is pending."""
        if max_revisions < 1:
            raise ValueError("max_revisions must be >= 1")
        if not self.compaction_pending:
            return True
        target = self._compact_rev
        txn = self._backend.batch.write()
        self._compact_progress, done = compact_batch(
            txn,
            self._backend.db(schema.KEY_INDEX),
            self._backend.db(schema.KEY),
            self._compact_progress,
            target,
            max_revisions,
        )
        meta_db = self._backend.db(schema.META)
        txn.put(schema.META_COMPACT_PROGRESS, self._compact_progress, db=meta_db)
        if done:
            self._finished_compact_rev = target
            txn.put(schema.META_FINISHED_COMPACT, _I64.pack(target), db=meta_db)
        return done

    def compact_run(self, max_revisions_per_txn: int = DEFAULT_COMPACT_BATCH) -> None:
        """Finish the pending compaction, committing the batch after every step."""
        while not self.compact_step(max_revisions_per_txn):
            self._backend.batch.commit()
        self._backend.batch.commit()

    # --- hash and history -----------------------------------------------------------------

    def hash_kv(self, revision: int = 0) -> tuple[int, int]:
        """(crc32 of the history up to `revision`, compact revision), etcd's HashKV.

        Covers every revision in (compact, revision] plus the versions compaction keeps at or
        below it, so it is the same on members with equal history, however far each one's
        physical compaction has got.
        """
        compact = self._compact_rev
        with self._view() as (txn, cur_rev):
            if 0 < revision <= compact:
                raise CompactedError
            if revision > cur_rev:
                raise FutureRevError
            if revision <= 0:
                revision = cur_rev
            crc = hash_history(
                txn,
                self._backend.db(schema.KEY_INDEX),
                self._backend.db(schema.KEY),
                revision,
                compact,
                zlib.crc32(schema.KEY),
            )
        return crc, compact

    def events_since(
        self,
        revision: int,
        key: bytes = b"",
        range_end: bytes = b"\x00",
        limit: int = DEFAULT_EVENTS_LIMIT,
        *,
        prev_kv: bool = False,
    ) -> EventBatch:
        """Put/delete events at main revision >= `revision` on keys in [key, range_end).

        Examines about `limit` revision-log entries (never splitting a main revision), so a
        caller catching up loops from `next_revision` until it passes the current revision.
        With `prev_kv`, each event carries the key's state at the revision before it.
        """
        if revision < 1:
            raise ValueError("revision must be >= 1")
        if limit < 1:
            raise ValueError("limit must be >= 1")
        if revision < self._compact_rev:
            raise CompactedError
        events: list[Event] = []
        next_rev = revision
        with self._view() as (txn, cur_rev):
            log = txn.cursor(db=self._backend.db(schema.KEY))
            index = txn.cursor(db=self._backend.db(schema.KEY_INDEX))
            examined = 0
            last_main = 0
            ok = log.set_range(codec.rev_bytes(revision, 0))
            while ok:
                revb, entry = log.item()
                main = codec.rev_main(revb)
                if examined >= limit and main != last_main:
                    break
                examined += 1
                last_main = main
                next_rev = main + 1
                ukey = entry[1:]
                if in_range(ukey, key, range_end):
                    events.append(self._event(txn, index, revb, entry, prev_kv=prev_kv))
                ok = log.next()
            if not ok:
                # The whole log was read: continue after what this view has.
                next_rev = max(revision, cur_rev + 1)
        return EventBatch(tuple(events), next_rev)

    def _event(
        self,
        txn: lmdb.Transaction[bytes],
        index: lmdb.Cursor[bytes],
        revb: bytes,
        entry: bytes,
        *,
        prev_kv: bool,
    ) -> Event:
        ukey = entry[1:]
        main = codec.rev_main(revb)
        prev = self._prev_kv_at(txn, ukey, main) if prev_kv else None
        if entry[0] == codec.KIND_TOMBSTONE:
            return Event(EventType.DELETE, KeyValue(ukey, 0, main, 0), prev)
        record = index.get(codec.index_prefix(ukey) + revb)
        if record is None:
            raise AssertionError(f"revision log entry without index entry: {revb!r}")
        return Event(EventType.PUT, codec.decode_kv_keyless(ukey, main, record), prev)

    def prev_kv(self, key: bytes, mod_revision: int) -> KeyValue | None:
        """State of `key` just before `mod_revision`; None if absent or compacted away."""
        with self._backend.view() as txn:
            return self._prev_kv_at(txn, key, mod_revision)

    def _prev_kv_at(
        self, txn: lmdb.Transaction[bytes], key: bytes, mod_revision: int
    ) -> KeyValue | None:
        if mod_revision - 1 < self._compact_rev:
            return None
        return self._index.live(txn, key, mod_revision - 1)

    def iter_live(self, batch_keys: int = 1000) -> Iterator[KeyValue]:
        """Every live key at the current revision, in key order, read in bounded chunks."""
        start = b""
        while True:
            with self._view() as (txn, cur_rev):
                kvs, _count = self._index.walk(
                    txn, start, b"\x00", cur_rev, batch_keys, collect=True
                )
            if not kvs:
                return
            yield from kvs
            if len(kvs) < batch_keys:
                return
            start = kvs[-1].key + b"\x00"


def _txn_writes(req: TxnRequest) -> bool:
    for op in (*req.success, *req.failure):
        if isinstance(op, PutRequest | DeleteRangeRequest):
            return True
        if isinstance(op, TxnRequest) and _txn_writes(op):
            return True
    return False


def _compare_kv(c: Compare, kv: KeyValue) -> bool:
    target = c.target
    diff: int
    if target == CompareTarget.VALUE:
        diff = (kv.value > c.value) - (kv.value < c.value)
    elif target == CompareTarget.CREATE:
        diff = (kv.create_revision > c.create_revision) - (kv.create_revision < c.create_revision)
    elif target == CompareTarget.MOD:
        diff = (kv.mod_revision > c.mod_revision) - (kv.mod_revision < c.mod_revision)
    elif target == CompareTarget.VERSION:
        diff = (kv.version > c.version) - (kv.version < c.version)
    else:
        diff = (kv.lease > c.lease) - (kv.lease < c.lease)
    result = c.result
    if result == CompareResult.EQUAL:
        return diff == 0
    if result == CompareResult.NOT_EQUAL:
        return diff != 0
    if result == CompareResult.GREATER:
        return diff > 0
    return diff < 0


def _read_i64(raw: bytes | None, default: int) -> int:
    if raw is None:
        return default
    value: int = _I64.unpack(raw)[0]
    return value
