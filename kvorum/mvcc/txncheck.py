"""etcd's duplicate-key rule for txn requests (v3rpc `checkIntervals`), for the API layer.

Within one branch no key may be put twice, nor put and deleted; a nested txn's then and else
branches exclude each other, so the same key may be put in both. A violation fails the whole
request with `DuplicateKeyError` before it is proposed.
"""

from __future__ import annotations

from kvorum.mvcc.errors import DuplicateKeyError
from kvorum.mvcc.types import DeleteRangeRequest, PutRequest, RequestOp, TxnRequest

# A delete as etcd's interval tree sees it: [start, end), or the single key when end is None.
_Interval = tuple[bytes, bytes | None]


def check_txn_request(req: TxnRequest) -> None:
    """Raise `DuplicateKeyError` if either branch of `req` writes a key twice."""
    _check_ops(req.success)
    _check_ops(req.failure)


def _hits(dels: list[_Interval], key: bytes) -> bool:
    # etcd builds the interval from the raw range_end: b"\0" (from-key) then makes an empty
    # interval, so a from-key delete never conflicts with a put. Matched on purpose.
    for start, end in dels:
        if end is None:
            if key == start:
                return True
        elif start <= key < end:
            return True
    return False


def _check_ops(ops: tuple[RequestOp, ...]) -> tuple[set[bytes], list[_Interval]]:
    dels: list[_Interval] = [
        (op.key, op.range_end or None) for op in ops if isinstance(op, DeleteRangeRequest)
    ]
    puts: set[bytes] = set()
    for op in ops:
        if not isinstance(op, TxnRequest):
            continue
        puts_then, dels_then = _check_ops(op.success)
        puts_else, dels_else = _check_ops(op.failure)
        for key in puts_then:
            if key in puts or _hits(dels, key):
                raise DuplicateKeyError
            puts.add(key)
        for key in puts_else:
            if (key in puts and key not in puts_then) or _hits(dels, key):
                raise DuplicateKeyError
            puts.add(key)
        dels.extend(dels_then)
        dels.extend(dels_else)
    for op in ops:
        if not isinstance(op, PutRequest):
            continue
        if op.key in puts or _hits(dels, op.key):
            raise DuplicateKeyError
        puts.add(op.key)
    return puts, dels
