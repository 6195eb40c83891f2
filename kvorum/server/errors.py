"""The member's errors, one table: each class carries etcd's gRPC status code and text.

Clients branch on these exact texts (etcd's ``rpctypes``), so the API layer maps an
exception to its status with ``err.grpc_code`` and ``str(err)`` and nothing else.
The texts are etcd's ``etcdserver`` errors verbatim; only the class names are ours.
"""

from __future__ import annotations

__all__ = [
    "BadLeaderTransfereeError",
    "LeaderChangedError",
    "NoLeaderError",
    "NotLeaderError",
    "ProposalDroppedError",
    "RequestCancelledError",
    "RequestTimeoutError",
    "ServerError",
    "StoppedError",
    "TimeoutDueToConnectionLostError",
    "TimeoutDueToLeaderFailError",
    "TimeoutLeaderTransferError",
    "TooManyRequestsError",
]


class ServerError(Exception):
    """Base of the member's request errors: ``grpc_code`` names a ``grpc.StatusCode``."""

    grpc_code: str = "UNKNOWN"
    text: str = "etcdserver: unknown error"

    def __init__(self, detail: str = "") -> None:
        # The message a client sees is etcd's text alone; the detail is for our logs.
        super().__init__(self.text)
        self.detail = detail


class NoLeaderError(ServerError):
    grpc_code = "UNAVAILABLE"
    text = "etcdserver: no leader"


class NotLeaderError(ServerError):
    grpc_code = "FAILED_PRECONDITION"
    text = "etcdserver: not leader"


class RequestTimeoutError(ServerError):
    grpc_code = "UNAVAILABLE"
    text = "etcdserver: request timed out"


class TimeoutDueToLeaderFailError(RequestTimeoutError):
    text = "etcdserver: request timed out, possibly due to previous leader failure"


class TimeoutDueToConnectionLostError(RequestTimeoutError):
    text = "etcdserver: request timed out, possibly due to connection lost"


class TimeoutLeaderTransferError(RequestTimeoutError):
    text = "etcdserver: request timed out, leader transfer took too long"


class NoLeaderDeadlineError(ServerError):
    """No leader appeared before the request's deadline.

    etcd 3.4's raft blocks a proposal (and a linearizable read) while no leader is known,
    until the server's request context expires; that bare context error reaches the client
    with code Unknown, not as ``etcdserver: request timed out``. Clients see exactly this.
    """

    grpc_code = "UNKNOWN"
    text = "context deadline exceeded"


class LeaderChangedError(ServerError):
    grpc_code = "UNAVAILABLE"
    text = "etcdserver: leader changed"


class StoppedError(ServerError):
    grpc_code = "UNAVAILABLE"
    text = "etcdserver: server stopped"


class RequestCancelledError(ServerError):
    grpc_code = "CANCELLED"
    text = "etcdserver: request cancelled"


class TooManyRequestsError(ServerError):
    grpc_code = "RESOURCE_EXHAUSTED"
    text = "etcdserver: too many requests"


class BadLeaderTransfereeError(ServerError):
    grpc_code = "FAILED_PRECONDITION"
    text = "etcdserver: bad leader transferee"


class ProposalDroppedError(ServerError):
    """The raft core refused the proposal (leadership transfer, uncommitted-size limit).

    etcd returns raft's own error text with status UNKNOWN; so do we.
    """

    grpc_code = "UNKNOWN"
    text = "raft proposal dropped"
