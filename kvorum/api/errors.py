"""Exceptions -> etcd's gRPC status (code and text): the one table the servicers map through.

Clients branch on etcd's exact texts and codes (`rpctypes` in etcd 3.4), so no servicer spells
a message itself. Five families of exceptions reach the API layer:

* `kvorum.mvcc.errors.MvccError` -- each class carries its wire code and text in `spec`
  (the table `kvorum.mvcc.ERRORS` lists them);
* `kvorum.lease.errors.LeaseError` -- the lessor's errors, declared the same way
  (`kvorum.lease.ERRORS`; "lease not found" is mvcc's class, shared);
* `kvorum.auth.errors.AuthError` -- the auth store's errors, declared the same way
  (`kvorum.auth.ERRORS`);
* `kvorum.server.errors.ServerError` -- the member's errors (no leader, timeouts, ...);
* `ApiError` below -- request checks done here before anything is proposed, and the errors
  of membership, alarms and leadership transfer that have no class elsewhere yet.

`STATUS_TABLE` is built from what the classes of all five families declare; `status_of`
looks an exception's class up in it. Anything else maps to UNKNOWN with its own text, as etcd
does for an error it has no translation for, and is logged.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import ClassVar, NoReturn

import grpc

from kvorum.auth.errors import AuthError
from kvorum.lease.errors import LeaseError
from kvorum.mvcc.errors import DuplicateKeyError, ErrorSpec, MvccError
from kvorum.server import errors as server_errors

__all__ = [
    "STATUS_TABLE",
    "ApiError",
    "CorruptError",
    "DuplicateKeyError",
    "EmptyKeyError",
    "EmptyRequestOpError",
    "InvalidCompareError",
    "InvalidSortOptionError",
    "LearnerNotReadyError",
    "LeaseProvidedError",
    "MemberBadUrlsError",
    "MemberExistError",
    "MemberNotFoundError",
    "MemberNotLearnerError",
    "NoSpaceError",
    "NotCapableError",
    "NotEnoughStartedMembersError",
    "NotSupportedForLearnerError",
    "PeerUrlExistError",
    "RequestTooLargeError",
    "StatusSpec",
    "TooManyLearnersError",
    "TooManyOpsError",
    "UnhealthyClusterError",
    "ValueProvidedError",
    "abort",
    "status_of",
]

log = logging.getLogger("kvorum.api")


@dataclass(frozen=True, slots=True)
class StatusSpec:
    """What goes on the wire for one error."""

    code: grpc.StatusCode
    text: str


class ApiError(Exception):
    """An error the API layer raises (or the member raises with an API-level meaning)."""

    grpc_code: ClassVar[str] = "UNKNOWN"
    text: ClassVar[str] = "etcdserver: unknown error"

    def __init__(self, detail: str = "") -> None:
        # The client sees etcd's text only; the detail is for our logs.
        super().__init__(self.text)
        self.detail = detail


# --- request checks (v3rpc key.go) -----------------------------------------------------------


class EmptyKeyError(ApiError):
    grpc_code = "INVALID_ARGUMENT"
    text = "etcdserver: key is not provided"


class ValueProvidedError(ApiError):
    grpc_code = "INVALID_ARGUMENT"
    text = "etcdserver: value is provided"


class LeaseProvidedError(ApiError):
    grpc_code = "INVALID_ARGUMENT"
    text = "etcdserver: lease is provided"


class TooManyOpsError(ApiError):
    grpc_code = "INVALID_ARGUMENT"
    text = "etcdserver: too many operations in txn request"


class EmptyRequestOpError(ApiError):
    """A txn op with none of its oneof set: etcd answers with its "key not found" error."""

    grpc_code = "INVALID_ARGUMENT"
    text = "etcdserver: key not found"


class InvalidSortOptionError(ApiError):
    """An unknown sort order or target. etcd 3.4 has no check (and may panic); 3.5's text."""

    grpc_code = "INVALID_ARGUMENT"
    text = "etcdserver: invalid sort option"


class InvalidCompareError(ApiError):
    """An unknown compare result or target. etcd 3.4 silently evaluates such a compare."""

    grpc_code = "INVALID_ARGUMENT"
    text = "etcdserver: kvorum: invalid compare result or target"


class RequestTooLargeError(ApiError):
    grpc_code = "INVALID_ARGUMENT"
    text = "etcdserver: request is too large"


# --- membership ---------------------------------------------------------------------------------


class MemberExistError(ApiError):
    grpc_code = "FAILED_PRECONDITION"
    text = "etcdserver: member ID already exist"


class PeerUrlExistError(ApiError):
    grpc_code = "FAILED_PRECONDITION"
    text = "etcdserver: Peer URLs already exists"


class NotEnoughStartedMembersError(ApiError):
    grpc_code = "FAILED_PRECONDITION"
    text = "etcdserver: re-configuration failed due to not enough started members"


class MemberBadUrlsError(ApiError):
    grpc_code = "INVALID_ARGUMENT"
    text = "etcdserver: given member URLs are invalid"


class MemberNotFoundError(ApiError):
    grpc_code = "NOT_FOUND"
    text = "etcdserver: member not found"


class MemberNotLearnerError(ApiError):
    grpc_code = "FAILED_PRECONDITION"
    text = "etcdserver: can only promote a learner member"


class LearnerNotReadyError(ApiError):
    grpc_code = "FAILED_PRECONDITION"
    text = "etcdserver: can only promote a learner member which is in sync with leader"


class TooManyLearnersError(ApiError):
    grpc_code = "FAILED_PRECONDITION"
    text = "etcdserver: too many learner members in cluster"


# --- cluster health, alarms -------------------------------------------------------------------


class UnhealthyClusterError(ApiError):
    grpc_code = "UNAVAILABLE"
    text = "etcdserver: unhealthy cluster"


class NotCapableError(ApiError):
    grpc_code = "UNAVAILABLE"
    text = "etcdserver: not capable"


class NotSupportedForLearnerError(ApiError):
    grpc_code = "UNAVAILABLE"
    text = "etcdserver: rpc not supported for learner"


class NoSpaceError(ApiError):
    """The NOSPACE alarm is raised: writes are refused until it is cleared."""

    grpc_code = "RESOURCE_EXHAUSTED"
    text = "etcdserver: mvcc: database space exceeded"


class CorruptError(ApiError):
    grpc_code = "DATA_LOSS"
    text = "etcdserver: corrupt cluster"


def _spec(code_name: str, text: str) -> StatusSpec:
    return StatusSpec(grpc.StatusCode[code_name], text)


def _declared(cls: type[BaseException]) -> StatusSpec | None:
    """The status a class declares itself, if it belongs to one of the five families."""
    if issubclass(cls, MvccError | LeaseError | AuthError):
        # The base classes declare no spec; only their concrete errors do.
        mvcc_spec: ErrorSpec | None = getattr(cls, "spec", None)
        return None if mvcc_spec is None else _spec(mvcc_spec.grpc_code, mvcc_spec.grpc_text)
    if issubclass(cls, ApiError | server_errors.ServerError):
        return _spec(cls.grpc_code, cls.text)
    return None


def _build_table() -> dict[type[BaseException], StatusSpec]:
    table: dict[type[BaseException], StatusSpec] = {}
    pending: list[type[BaseException]] = [
        MvccError,
        LeaseError,
        AuthError,
        ApiError,
        server_errors.ServerError,
    ]
    while pending:  # every class of the five families defined so far, however deep
        cls = pending.pop()
        spec = _declared(cls)
        if spec is not None:
            table[cls] = spec
        pending.extend(cls.__subclasses__())
    return table


#: exception class -> wire status, for every class of the five families. A class defined
#: after this module was imported (a later server error) is added when first seen.
STATUS_TABLE: dict[type[BaseException], StatusSpec] = _build_table()


def status_of(exc: BaseException) -> StatusSpec | None:
    """etcd's status for `exc`, or None if it is not one of the errors we know."""
    cls = type(exc)
    spec = STATUS_TABLE.get(cls)
    if spec is None:
        spec = _declared(cls)
        if spec is not None:
            STATUS_TABLE[cls] = spec
    return spec


async def abort(context: grpc.aio.ServicerContext, exc: Exception, method: str) -> NoReturn:
    """End the RPC with etcd's status for `exc` (UNKNOWN with its text if it has none)."""
    spec = status_of(exc)
    if spec is None:
        log.error("unexpected error in %s: %r", method, exc, exc_info=exc)
        spec = StatusSpec(grpc.StatusCode.UNKNOWN, str(exc) or type(exc).__name__)
    elif spec.code in (grpc.StatusCode.UNKNOWN, grpc.StatusCode.DATA_LOSS):
        log.warning("%s failed: %s %s", method, spec.text, getattr(exc, "detail", ""))
    await context.abort(spec.code, spec.text)
    raise AssertionError("context.abort returned")  # it always raises
