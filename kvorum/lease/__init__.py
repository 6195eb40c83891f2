"""Leases: grant, revoke, renew, key attachment and leader-only expiry, as a pure core.

`Lessor` is the state machine (see its module for the roles of leader and followers),
`LeaseStore` its persistence in the backend's `lease` bucket, `recover_lessor` the restart path,
`errors` the error table with etcd's texts.
"""

from kvorum.lease.errors import (
    ERRORS,
    LeaseError,
    LeaseExistsError,
    LeaseExpiredError,
    LeaseNotFoundError,
    LeaseTTLTooLargeError,
    NotPrimaryError,
)
from kvorum.lease.lessor import (
    DEFAULT_EXPIRED_BATCH,
    EXPIRED_RETRY_INTERVAL_S,
    EXPIRY_CHECK_INTERVAL_S,
    LEASE_REVOKE_RATE_PER_S,
    MAX_LEASE_TTL_S,
    NO_LEASE,
    Lessor,
    choose_lease_id,
    min_lease_ttl_s,
)
from kvorum.lease.store import LeaseStore, MemoryLeaseStore, recover_lessor
from kvorum.lease.types import LeaseBucket, LeaseRecord, LeaseSink, TimeToLive

__all__ = [
    "DEFAULT_EXPIRED_BATCH",
    "ERRORS",
    "EXPIRED_RETRY_INTERVAL_S",
    "EXPIRY_CHECK_INTERVAL_S",
    "LEASE_REVOKE_RATE_PER_S",
    "MAX_LEASE_TTL_S",
    "NO_LEASE",
    "LeaseBucket",
    "LeaseError",
    "LeaseExistsError",
    "LeaseExpiredError",
    "LeaseNotFoundError",
    "LeaseRecord",
    "LeaseSink",
    "LeaseStore",
    "LeaseTTLTooLargeError",
    "Lessor",
    "MemoryLeaseStore",
    "NotPrimaryError",
    "TimeToLive",
    "choose_lease_id",
    "min_lease_ttl_s",
    "recover_lessor",
]
