"""etcd's errors as Python exceptions, chosen by etcd's message text through one table.

etcd answers every failure with a gRPC status whose message is one of a fixed set of texts
(``rpctypes`` in etcd 3.4); clients are expected to branch on that text, not only on the code,
because one code covers many meanings (``UNAVAILABLE`` is both "no leader" and "request timed
out"). ``ERROR_TABLE`` maps each known text to its exception class; ``error_from_status`` is the
only place a gRPC status becomes an exception. A text the table does not know falls back to a
class chosen by the gRPC code alone, so a new server error is still an ``EtcdError``.
"""

from __future__ import annotations

from typing import Any

__all__ = [
    "CODE_FALLBACK",
    "ERROR_TABLE",
    "AuthFailedError",
    "AuthNotEnabledError",
    "BadLeaderTransfereeError",
    "CompactedError",
    "CorruptError",
    "DeadlineExceededError",
    "DuplicateKeyError",
    "ElectionNoLeaderError",
    "ElectionNotLeaderError",
    "EtcdError",
    "FutureRevisionError",
    "InvalidAuthTokenError",
    "KeyNotFoundError",
    "KeyNotProvidedError",
    "LeaderChangedError",
    "LearnerNotReadyError",
    "LeaseExistsError",
    "LeaseNotFoundError",
    "LeaseProvidedError",
    "LeaseTTLTooLargeError",
    "MemberBadURLsError",
    "MemberExistsError",
    "MemberNotFoundError",
    "MemberNotLearnerError",
    "NoLeaderError",
    "NoSpaceError",
    "NotEnoughStartedMembersError",
    "NotLeaderError",
    "PermissionDeniedError",
    "RequestTimedOutError",
    "RequestTooLargeError",
    "TooManyLearnersError",
    "TooManyOpsError",
    "TooManyRequestsError",
    "Unavailable",
    "UserEmptyError",
    "ValueProvidedError",
    "error_from_rpc",
    "error_from_status",
]


class EtcdError(Exception):
    """Any failure reported by etcd (or kvorum) or by the gRPC layer under this client.

    ``code`` is the gRPC status code's name (``"UNAVAILABLE"``), ``text`` etcd's message.
    """

    def __init__(self, text: str, code: str = "UNKNOWN") -> None:
        super().__init__(text)
        self.text = text
        self.code = code

    def __repr__(self) -> str:
        return f"{type(self).__name__}(code={self.code!r}, text={self.text!r})"


class Unavailable(EtcdError):
    """The member could not serve the request now (unreachable, no leader, stopping...)."""


class NoLeaderError(Unavailable):
    pass


class LeaderChangedError(Unavailable):
    pass


class RequestTimedOutError(Unavailable, TimeoutError):
    """etcd gave up waiting for the request to commit; it may or may not have been applied."""


class DeadlineExceededError(EtcdError, TimeoutError):
    """The client's own deadline passed first; a write may or may not have been applied."""


class CompactedError(EtcdError):
    """The revision asked for is older than the compaction point.

    ``compact_revision`` is the compaction point when the server said it (watches), else 0.
    """

    def __init__(self, text: str, code: str = "OUT_OF_RANGE", compact_revision: int = 0) -> None:
        super().__init__(text, code)
        self.compact_revision = compact_revision


class FutureRevisionError(EtcdError):
    pass


class NoSpaceError(EtcdError):
    pass


class KeyNotProvidedError(EtcdError):
    pass


class KeyNotFoundError(EtcdError):
    pass


class ValueProvidedError(EtcdError):
    pass


class LeaseProvidedError(EtcdError):
    pass


class TooManyOpsError(EtcdError):
    pass


class DuplicateKeyError(EtcdError):
    pass


class RequestTooLargeError(EtcdError):
    pass


class TooManyRequestsError(EtcdError):
    pass


class LeaseNotFoundError(EtcdError):
    pass


class LeaseExistsError(EtcdError):
    pass


class LeaseTTLTooLargeError(EtcdError):
    pass


class MemberExistsError(EtcdError):
    pass


class MemberNotFoundError(EtcdError):
    pass


class MemberBadURLsError(EtcdError):
    pass


class NotEnoughStartedMembersError(EtcdError):
    pass


class MemberNotLearnerError(EtcdError):
    pass


class LearnerNotReadyError(EtcdError):
    pass


class TooManyLearnersError(EtcdError):
    pass


class UserEmptyError(EtcdError):
    """Auth is enabled and the request carried no user (no token)."""


class PermissionDeniedError(EtcdError):
    pass


class AuthFailedError(EtcdError):
    pass


class AuthNotEnabledError(EtcdError):
    pass


class InvalidAuthTokenError(EtcdError):
    pass


class NotLeaderError(EtcdError):
    pass


class BadLeaderTransfereeError(EtcdError):
    pass


class CorruptError(EtcdError):
    pass


class ElectionNoLeaderError(EtcdError):
    """Election.Leader found nobody campaigning (the election service's own text)."""


class ElectionNotLeaderError(EtcdError):
    """Proclaim/Resign with a leader key that no longer leads."""


_P = "etcdserver: "

# etcd's message text -> exception class. Texts with no dedicated class (membership details,
# user/role management) map to the closest family so that callers can still branch on them.
ERROR_TABLE: dict[str, type[EtcdError]] = {
    _P + "key is not provided": KeyNotProvidedError,
    _P + "key not found": KeyNotFoundError,
    _P + "value is provided": ValueProvidedError,
    _P + "lease is provided": LeaseProvidedError,
    _P + "too many operations in txn request": TooManyOpsError,
    _P + "duplicate key given in txn request": DuplicateKeyError,
    _P + "mvcc: required revision has been compacted": CompactedError,
    _P + "mvcc: required revision is a future revision": FutureRevisionError,
    _P + "mvcc: database space exceeded": NoSpaceError,
    _P + "requested lease not found": LeaseNotFoundError,
    _P + "lease already exists": LeaseExistsError,
    _P + "too large lease TTL": LeaseTTLTooLargeError,
    _P + "member ID already exist": MemberExistsError,
    _P + "Peer URLs already exists": MemberExistsError,
    _P + "member not found": MemberNotFoundError,
    _P + "given member URLs are invalid": MemberBadURLsError,
    _P + "re-configuration failed due to not enough started members": (
        NotEnoughStartedMembersError
    ),
    _P + "can only promote a learner member": MemberNotLearnerError,
    _P + "can only promote a learner member which is in sync with leader": LearnerNotReadyError,
    _P + "too many learner members in cluster": TooManyLearnersError,
    _P + "user name is empty": UserEmptyError,
    _P + "request is too large": RequestTooLargeError,
    _P + "too many requests": TooManyRequestsError,
    _P + "authentication failed, invalid user ID or password": AuthFailedError,
    _P + "permission denied": PermissionDeniedError,
    _P + "authentication is not enabled": AuthNotEnabledError,
    _P + "invalid auth token": InvalidAuthTokenError,
    _P + "no leader": NoLeaderError,
    _P + "not leader": NotLeaderError,
    _P + "leader changed": LeaderChangedError,
    _P + "not capable": Unavailable,
    _P + "server stopped": Unavailable,
    _P + "unhealthy cluster": Unavailable,
    _P + "rpc not supported for learner": Unavailable,
    _P + "request timed out": RequestTimedOutError,
    _P + "request timed out, possibly due to previous leader failure": RequestTimedOutError,
    _P + "request timed out, possibly due to connection lost": RequestTimedOutError,
    _P + "request timed out, waiting for the applied index took too long": RequestTimedOutError,
    _P + "corrupt cluster": CorruptError,
    _P + "bad leader transferee": BadLeaderTransfereeError,
    # The lock/election services answer with plain errors (code UNKNOWN) of their own text.
    "election: no leader": ElectionNoLeaderError,
    "election: not leader": ElectionNotLeaderError,
}

# gRPC code name -> class, for texts the table does not know (including gRPC's own failures
# such as "failed to connect to all addresses").
CODE_FALLBACK: dict[str, type[EtcdError]] = {
    "UNAVAILABLE": Unavailable,
    "DEADLINE_EXCEEDED": DeadlineExceededError,
    "PERMISSION_DENIED": PermissionDeniedError,
    "UNAUTHENTICATED": InvalidAuthTokenError,
}


# gRPC's own texts for a broken transport under a code that does not say so: the C core reports
# a connection reset under a call being opened (a member killed at that moment) as INTERNAL.
# Not the server's answer, so the client fails over as for UNAVAILABLE.
TRANSPORT_TEXTS: dict[str, type[EtcdError]] = {"Internal error from Core": Unavailable}


def error_from_status(code: str, text: str) -> EtcdError:
    """The exception for a gRPC status given as its code name and message text."""
    cls = ERROR_TABLE.get(text) or TRANSPORT_TEXTS.get(text) or CODE_FALLBACK.get(code, EtcdError)
    return cls(text, code)


def error_from_rpc(exc: Any) -> EtcdError:
    """The exception for a ``grpc.RpcError`` (sync or aio: both have ``code()``/``details()``)."""
    code = exc.code()
    return error_from_status(getattr(code, "name", str(code)), exc.details() or "")
