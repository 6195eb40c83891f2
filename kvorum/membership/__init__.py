"""Cluster membership and alarms: the member list, removed ids, cluster identity, raised alarms.

`MembershipStore` keeps members in the backend and holds etcd's membership rules (with its error
texts, `errors`); `AlarmStore` keeps the raised alarms; `types` has the records and the conf
change context format.
"""

from kvorum.membership.alarms import AlarmStore
from kvorum.membership.errors import (
    ERRORS,
    IDRemovedError,
    LearnerNotReadyError,
    MemberExistsError,
    MemberNotFoundError,
    MemberNotLearnerError,
    MembershipError,
    NotEnoughStartedMembersError,
    PeerURLExistsError,
    TooManyLearnersError,
    UnhealthyClusterError,
)
from kvorum.membership.store import LEARNER_READY_RATIO, MAX_LEARNERS, MembershipStore
from kvorum.membership.types import (
    AlarmAction,
    AlarmMember,
    AlarmType,
    ConfChangeContext,
    Member,
    decode_conf_change_context,
    decode_member,
    encode_conf_change_context,
    encode_member,
)

__all__ = [
    "ERRORS",
    "LEARNER_READY_RATIO",
    "MAX_LEARNERS",
    "AlarmAction",
    "AlarmMember",
    "AlarmStore",
    "AlarmType",
    "ConfChangeContext",
    "IDRemovedError",
    "LearnerNotReadyError",
    "Member",
    "MemberExistsError",
    "MemberNotFoundError",
    "MemberNotLearnerError",
    "MembershipError",
    "MembershipStore",
    "NotEnoughStartedMembersError",
    "PeerURLExistsError",
    "TooManyLearnersError",
    "UnhealthyClusterError",
    "decode_conf_change_context",
    "decode_member",
    "encode_conf_change_context",
    "encode_member",
]
