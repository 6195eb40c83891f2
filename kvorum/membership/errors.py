"""Every error of membership changes and alarms, with etcd's texts and gRPC status, in one table.

`text` is what etcd's `membership` package (or its server, for the reconfiguration checks) says;
`grpc_code`/`grpc_text` are what etcd's API layer puts on the wire (v3rpc's `toGRPCErrorMap`:
note that "ID removed" and "ID not found" both reach clients as "member not found").
"""

from __future__ import annotations

from typing import ClassVar

from kvorum.mvcc.errors import ErrorSpec

MEMBER_NOT_FOUND = ErrorSpec(
    "membership: ID not found", "NOT_FOUND", "etcdserver: member not found"
)
ID_REMOVED = ErrorSpec("membership: ID removed", "NOT_FOUND", "etcdserver: member not found")
MEMBER_EXISTS = ErrorSpec(
    "membership: ID exists", "FAILED_PRECONDITION", "etcdserver: member ID already exist"
)
PEER_URL_EXISTS = ErrorSpec(
    "membership: peerURL exists", "FAILED_PRECONDITION", "etcdserver: Peer URLs already exists"
)
MEMBER_NOT_LEARNER = ErrorSpec(
    "membership: can only promote a learner member",
    "FAILED_PRECONDITION",
    "etcdserver: can only promote a learner member",
)
TOO_MANY_LEARNERS = ErrorSpec(
    "membership: too many learner members in cluster",
    "FAILED_PRECONDITION",
    "etcdserver: too many learner members in cluster",
)
LEARNER_NOT_READY = ErrorSpec(
    "etcdserver: can only promote a learner member which is in sync with leader",
    "FAILED_PRECONDITION",
    "etcdserver: can only promote a learner member which is in sync with leader",
)
NOT_ENOUGH_STARTED = ErrorSpec(
    "etcdserver: re-configuration failed due to not enough started members",
    "FAILED_PRECONDITION",
    "etcdserver: re-configuration failed due to not enough started members",
)
# Raised before proposing a voter addition when some voter is not connected (etcd's ErrUnhealthy).
UNHEALTHY_CLUSTER = ErrorSpec(
    "etcdserver: unhealthy cluster", "UNAVAILABLE", "etcdserver: unhealthy cluster"
)


class MembershipError(Exception):
    """Base of the membership errors; `spec` carries the texts and status."""

    spec: ClassVar[ErrorSpec]

    def __init__(self, detail: str = "") -> None:
        super().__init__(self.spec.text)
        self.detail = detail


class MemberNotFoundError(MembershipError):
    spec = MEMBER_NOT_FOUND


class IDRemovedError(MembershipError):
    """The id belonged to a member that was removed: it can never be used again."""

    spec = ID_REMOVED


class MemberExistsError(MembershipError):
    spec = MEMBER_EXISTS


class PeerURLExistsError(MembershipError):
    spec = PEER_URL_EXISTS


class MemberNotLearnerError(MembershipError):
    spec = MEMBER_NOT_LEARNER


class TooManyLearnersError(MembershipError):
    spec = TOO_MANY_LEARNERS


class LearnerNotReadyError(MembershipError):
    spec = LEARNER_NOT_READY


class NotEnoughStartedMembersError(MembershipError):
    spec = NOT_ENOUGH_STARTED


class UnhealthyClusterError(MembershipError):
    spec = UNHEALTHY_CLUSTER


#: error class -> spec, the table the API layer maps through.
ERRORS: dict[type[MembershipError], ErrorSpec] = {
    cls: cls.spec
    for cls in (
        MemberNotFoundError,
        IDRemovedError,
        MemberExistsError,
        PeerURLExistsError,
        MemberNotLearnerError,
        TooManyLearnersError,
        LearnerNotReadyError,
        NotEnoughStartedMembersError,
        UnhealthyClusterError,
    )
}
