"""Every error the lessor raises, with etcd's texts and gRPC status, in one table.

The rows reuse `kvorum.mvcc.errors.ErrorSpec`: `text` is what etcd's `lease` package says,
`grpc_code`/`grpc_text` what its API layer (rpctypes) puts on the wire. "lease not found" is one
error in etcd shared by mvcc and the lessor, so the lessor raises mvcc's `LeaseNotFoundError`
(re-exported here) and the API layer needs one row for it, not two.
"""

from __future__ import annotations

from typing import ClassVar

from kvorum.mvcc.errors import LEASE_NOT_FOUND, ErrorSpec, LeaseNotFoundError

LEASE_EXISTS = ErrorSpec(
    "lease already exists", "FAILED_PRECONDITION", "etcdserver: lease already exists"
)
LEASE_TTL_TOO_LARGE = ErrorSpec(
    "too large lease TTL", "OUT_OF_RANGE", "etcdserver: too large lease TTL"
)
# etcd's server never shows this one to clients: it forwards the request to the leader. The
# wire row is the fallback for a server that cannot forward (etcd's ErrGRPCNotLeader).
NOT_PRIMARY = ErrorSpec("not a primary lessor", "FAILED_PRECONDITION", "etcdserver: not leader")
# kvorum's name for etcd's "renew found the lease already expired" state: etcd blocks the
# renewal until the revocation is applied (then answers "lease not found") or the member is
# demoted (then retries on the new leader). The pure core cannot block, so it says so and the
# server waits; if it must answer at once, the answer etcd would end with is "not found".
LEASE_EXPIRED = ErrorSpec(
    "lease expired, revocation pending", "NOT_FOUND", LEASE_NOT_FOUND.grpc_text
)


class LeaseError(Exception):
    """Base of the lessor's own errors; `spec` carries the texts and status."""

    spec: ClassVar[ErrorSpec]

    def __init__(self, detail: str = "") -> None:
        super().__init__(self.spec.text)
        self.detail = detail


class LeaseExistsError(LeaseError):
    spec = LEASE_EXISTS


class LeaseTTLTooLargeError(LeaseError):
    spec = LEASE_TTL_TOO_LARGE


class NotPrimaryError(LeaseError):
    spec = NOT_PRIMARY


class LeaseExpiredError(LeaseError):
    spec = LEASE_EXPIRED


#: error class -> spec, the table the API layer maps through (with mvcc's `ERRORS`).
ERRORS: dict[type[Exception], ErrorSpec] = {
    LeaseNotFoundError: LEASE_NOT_FOUND,
    LeaseExistsError: LEASE_EXISTS,
    LeaseTTLTooLargeError: LEASE_TTL_TOO_LARGE,
    NotPrimaryError: NOT_PRIMARY,
    LeaseExpiredError: LEASE_EXPIRED,
}

__all__ = [
    "ERRORS",
    "LEASE_EXISTS",
    "LEASE_EXPIRED",
    "LEASE_NOT_FOUND",
    "LEASE_TTL_TOO_LARGE",
    "NOT_PRIMARY",
    "LeaseError",
    "LeaseExistsError",
    "LeaseExpiredError",
    "LeaseNotFoundError",
    "LeaseTTLTooLargeError",
    "NotPrimaryError",
]
