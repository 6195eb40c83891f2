"""Records the lessor hands out and persists, and the interface of its persistence."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Protocol


@dataclass(frozen=True, slots=True)
class LeaseRecord:
    """What survives a restart for one lease (etcd's `leasepb.Lease`).

    `remaining_ttl_s` is etcd's checkpointed remaining TTL; kvorum does not checkpoint yet, so
    it is always written as 0 ("unset: use the full TTL") and kept only so the format need not
    change when checkpointing arrives.
    """

    lease_id: int
    ttl_s: int
    remaining_ttl_s: int = 0


@dataclass(frozen=True, slots=True)
class TimeToLive:
    """Answer to LeaseTimeToLive: `ttl_s` is what is left, `granted_ttl_s` what was granted.

    `ttl_s` is truncated toward zero as etcd's `int64(Remaining().Seconds())`, so a lease past
    its expiry but not yet revoked can show 0 or a small negative number, as in etcd.
    """

    lease_id: int
    ttl_s: int
    granted_ttl_s: int
    keys: tuple[bytes, ...] = ()


class LeaseSink(Protocol):
    """Where the lessor writes its durable state, inside the apply's backend transaction.

    Grant and revoke are applied from committed raft entries; whatever the sink writes must go
    into the same backend batch as the mvcc changes of that entry (a revoke's key deletions),
    so a crash keeps both or neither.
    """

    def save(self, record: LeaseRecord) -> None: ...

    def remove(self, lease_id: int) -> None: ...


class LeaseBucket(LeaseSink, Protocol):
    """A sink that can also read back what it holds, for recovery at restart."""

    def load(self) -> Iterator[LeaseRecord]: ...
