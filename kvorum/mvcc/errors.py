"""Every error the mvcc layer raises, with etcd's texts and gRPC status, in one table.

`text` is the message etcd's Go error carries at the layer that raises it; `grpc_text` and
`grpc_code` are what etcd's API layer (rpctypes) puts on the wire for it. The API layer maps
errors through `ERRORS` and never spells a message itself. Clients branch on these texts.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar


@dataclass(frozen=True, slots=True)
class ErrorSpec:
    """One row of the table: the raised text and the wire status."""

    text: str
    grpc_code: str  # a `grpc.StatusCode` member name, kept as text to avoid importing grpc
    grpc_text: str


COMPACTED = ErrorSpec(
    "mvcc: required revision has been compacted",
    "OUT_OF_RANGE",
    "etcdserver: mvcc: required revision has been compacted",
)
FUTURE_REV = ErrorSpec(
    "mvcc: required revision is a future revision",
    "OUT_OF_RANGE",
    "etcdserver: mvcc: required revision is a future revision",
)
# Raised by etcd's applier (server layer) for ignore_value / ignore_lease on a missing key.
KEY_NOT_FOUND = ErrorSpec(
    "etcdserver: key not found", "INVALID_ARGUMENT", "etcdserver: key not found"
)
# etcd's lessor says "lease not found"; rpctypes rewrites it for the wire.
LEASE_NOT_FOUND = ErrorSpec("lease not found", "NOT_FOUND", "etcdserver: requested lease not found")
# Raised by etcd's API layer (v3rpc checkIntervals); `txncheck` implements that check here.
DUPLICATE_KEY = ErrorSpec(
    "etcdserver: duplicate key given in txn request",
    "INVALID_ARGUMENT",
    "etcdserver: duplicate key given in txn request",
)
# kvorum-only, no longer raised: the key index stores keys beyond LMDB's 511-byte limit in its
# spill form (see `_codec`). Kept so the error table and its importers stay stable.
KEY_TOO_LONG = ErrorSpec(
    "kvorum: key is too long for the key index",
    "INVALID_ARGUMENT",
    "etcdserver: kvorum: key is too long for the key index",
)


class MvccError(Exception):
    """Base of the errors in the table; `spec` carries the texts and status."""

    spec: ClassVar[ErrorSpec]

    def __init__(self, detail: str = "") -> None:
        super().__init__(self.spec.text)
        self.detail = detail


class CompactedError(MvccError):
    spec = COMPACTED


class FutureRevError(MvccError):
    spec = FUTURE_REV


class KeyNotFoundError(MvccError):
    spec = KEY_NOT_FOUND


class LeaseNotFoundError(MvccError):
    spec = LEASE_NOT_FOUND


class DuplicateKeyError(MvccError):
    spec = DUPLICATE_KEY


class KeyTooLongError(MvccError):
    spec = KEY_TOO_LONG


#: error class -> spec, the table the API layer maps through.
ERRORS: dict[type[MvccError], ErrorSpec] = {
    cls: cls.spec
    for cls in (
        CompactedError,
        FutureRevError,
        KeyNotFoundError,
        LeaseNotFoundError,
        DuplicateKeyError,
        KeyTooLongError,
    )
}
