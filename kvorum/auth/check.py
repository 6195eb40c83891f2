"""Which permissions a KV request needs, and the check against the auth store (etcd's
`apply_auth.go` and `checkTxnAuth`).

A request needs, for each key range it touches, read or write permission on all of it:

* Range: read on [key, range_end).
* Put: write on the key; read on it too with `prev_kv`; with a lease, write on every key the
  lease already holds (etcd's checkLeasePuts: a user who could not revoke the lease must not
  attach more keys to it).
* DeleteRange: write on the range; read on it too with `prev_kv`.
* Txn: read on every compare's range, then every op of both branches as above.
* LeaseRevoke: write on every key the lease holds.

Two places where kvorum checks more than etcd 3.4 (known gaps there): ops of nested txns are
checked like top-level ones (3.4 skips them entirely), and a compare's `range_end` counts
(3.4 checks only its first key). A put inside a txn with `prev_kv` needs read too.

Pure functions over the auth store; the caller says who asks and how to find a lease's keys.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator

from kvorum.auth.store import AuthStore
from kvorum.auth.types import AuthInfo
from kvorum.mvcc.types import DeleteRangeRequest, PutRequest, RangeRequest, TxnRequest

__all__ = ["Need", "check_needs", "needs_of", "revoke_needs"]

#: (key, range_end, write): one range a request touches and how.
Need = tuple[bytes, bytes, bool]
LeaseKeys = Callable[[int], Iterable[bytes]]

KvRequest = RangeRequest | PutRequest | DeleteRangeRequest | TxnRequest


def needs_of(request: KvRequest, lease_keys: LeaseKeys) -> Iterator[Need]:
    """The ranges `request` touches, in the order etcd checks them."""
    if isinstance(request, RangeRequest):
        yield request.key, request.range_end, False
    elif isinstance(request, PutRequest):
        yield request.key, b"", True
        if request.lease:
            for key in lease_keys(request.lease):
                yield key, b"", True
        if request.prev_kv:
            yield request.key, b"", False
    elif isinstance(request, DeleteRangeRequest):
        if request.prev_kv:
            yield request.key, request.range_end, False
        yield request.key, request.range_end, True
    else:
        for compare in request.compare:
            yield compare.key, compare.range_end, False
        for op in (*request.success, *request.failure):
            yield from needs_of(op, lease_keys)


def revoke_needs(lease_id: int, lease_keys: LeaseKeys) -> Iterator[Need]:
    for key in lease_keys(lease_id):
        yield key, b"", True


def check_needs(store: AuthStore, info: AuthInfo | None, needs: Iterable[Need]) -> None:
    """Raise etcd's error for the first need `info`'s user lacks (nothing when auth is off)."""
    if not store.enabled:
        return
    for key, range_end, write in needs:
        store.check_permitted(info, key, range_end, write=write)
