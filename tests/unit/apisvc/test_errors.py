"""The one error table: every exception the API layer can see maps to etcd's code and text."""

from __future__ import annotations

import grpc
import pytest

from kvorum.api import errors as api_errors
from kvorum.api.errors import STATUS_TABLE, status_of
from kvorum.mvcc import errors as mvcc_errors
from kvorum.server import errors as server_errors

C = grpc.StatusCode
# exception class -> (code, text) as etcd 3.4's rpctypes put them on the wire.
EXPECTED: list[tuple[type[Exception], grpc.StatusCode, str]] = [
    (server_errors.NoLeaderError, C.UNAVAILABLE, "etcdserver: no leader"),
    (server_errors.RequestTimeoutError, C.UNAVAILABLE, "etcdserver: request timed out"),
    (
        server_errors.TimeoutDueToLeaderFailError,
        C.UNAVAILABLE,
        "etcdserver: request timed out, possibly due to previous leader failure",
    ),
    (server_errors.LeaderChangedError, C.UNAVAILABLE, "etcdserver: leader changed"),
    (server_errors.StoppedError, C.UNAVAILABLE, "etcdserver: server stopped"),
    (server_errors.NotLeaderError, C.FAILED_PRECONDITION, "etcdserver: not leader"),
    (
        server_errors.BadLeaderTransfereeError,
        C.FAILED_PRECONDITION,
        "etcdserver: bad leader transferee",
    ),
    (server_errors.TooManyRequestsError, C.RESOURCE_EXHAUSTED, "etcdserver: too many requests"),
    (
        mvcc_errors.CompactedError,
        C.OUT_OF_RANGE,
        "etcdserver: mvcc: required revision has been compacted",
    ),
    (
        mvcc_errors.FutureRevError,
        C.OUT_OF_RANGE,
        "etcdserver: mvcc: required revision is a future revision",
    ),
    (mvcc_errors.LeaseNotFoundError, C.NOT_FOUND, "etcdserver: requested lease not found"),
    (mvcc_errors.KeyNotFoundError, C.INVALID_ARGUMENT, "etcdserver: key not found"),
    (
        mvcc_errors.DuplicateKeyError,
        C.INVALID_ARGUMENT,
        "etcdserver: duplicate key given in txn request",
    ),
    (api_errors.EmptyKeyError, C.INVALID_ARGUMENT, "etcdserver: key is not provided"),
    (
        api_errors.TooManyOpsError,
        C.INVALID_ARGUMENT,
        "etcdserver: too many operations in txn request",
    ),
    (api_errors.RequestTooLargeError, C.INVALID_ARGUMENT, "etcdserver: request is too large"),
    (api_errors.ValueProvidedError, C.INVALID_ARGUMENT, "etcdserver: value is provided"),
    (api_errors.LeaseProvidedError, C.INVALID_ARGUMENT, "etcdserver: lease is provided"),
    (api_errors.MemberNotFoundError, C.NOT_FOUND, "etcdserver: member not found"),
    (api_errors.MemberExistError, C.FAILED_PRECONDITION, "etcdserver: member ID already exist"),
    (api_errors.PeerUrlExistError, C.FAILED_PRECONDITION, "etcdserver: Peer URLs already exists"),
    (
        api_errors.NotEnoughStartedMembersError,
        C.FAILED_PRECONDITION,
        "etcdserver: re-configuration failed due to not enough started members",
    ),
    (api_errors.UnhealthyClusterError, C.UNAVAILABLE, "etcdserver: unhealthy cluster"),
    (
        api_errors.LearnerNotReadyError,
        C.FAILED_PRECONDITION,
        "etcdserver: can only promote a learner member which is in sync with leader",
    ),
    (
        api_errors.TooManyLearnersError,
        C.FAILED_PRECONDITION,
        "etcdserver: too many learner members in cluster",
    ),
    (
        api_errors.MemberNotLearnerError,
        C.FAILED_PRECONDITION,
        "etcdserver: can only promote a learner member",
    ),
    (
        api_errors.NoSpaceError,
        C.RESOURCE_EXHAUSTED,
        "etcdserver: mvcc: database space exceeded",
    ),
    (
        api_errors.MemberBadUrlsError,
        C.INVALID_ARGUMENT,
        "etcdserver: given member URLs are invalid",
    ),
    (api_errors.CorruptError, C.DATA_LOSS, "etcdserver: corrupt cluster"),
]


@pytest.mark.parametrize(("cls", "code", "text"), EXPECTED, ids=[c[0].__name__ for c in EXPECTED])
def test_maps_to_etcds_status(cls: type[Exception], code: grpc.StatusCode, text: str) -> None:
    spec = status_of(cls("detail for the log"))
    assert spec is not None
    assert (spec.code, spec.text) == (code, text)


def test_texts_are_the_ones_compiled_into_etcd() -> None:
    """Every etcdserver text in the table (but kvorum's own) is a string in etcd 3.4's binary."""
    etcd = "/usr/bin/etcd"
    try:
        with open(etcd, "rb") as f:
            binary = f.read()
    except FileNotFoundError:
        pytest.skip(f"{etcd} is not installed")
    # 3.5's sort-option text is knowingly used for an input 3.4 does not check.
    ours = {"etcdserver: invalid sort option"}
    missing = sorted(
        spec.text
        for cls, spec in STATUS_TABLE.items()
        # The two base classes carry a placeholder and are never raised themselves.
        if cls not in (api_errors.ApiError, server_errors.ServerError)
        and "kvorum" not in spec.text
        and spec.text not in ours
        and spec.text.encode() not in binary
    )
    assert missing == []


def test_class_defined_later_maps_to_its_own_status() -> None:
    """A server error added after the table was built still goes out with its own text."""

    class NotReadyYetError(server_errors.ServerError):
        grpc_code = "FAILED_PRECONDITION"
        text = "etcdserver: something new"

    class SlowTimeoutError(server_errors.RequestTimeoutError):
        pass

    assert status_of(NotReadyYetError()) == api_errors.StatusSpec(
        C.FAILED_PRECONDITION, "etcdserver: something new"
    )
    assert status_of(SlowTimeoutError()) == api_errors.StatusSpec(
        C.UNAVAILABLE, "etcdserver: request timed out"
    )


def test_every_mvcc_error_is_in_the_table() -> None:
    for cls, spec in mvcc_errors.ERRORS.items():
        assert STATUS_TABLE[cls] == api_errors.StatusSpec(C[spec.grpc_code], spec.grpc_text)


def test_unknown_exception_has_no_entry() -> None:
    assert status_of(ValueError("boom")) is None
    assert status_of(KeyError("k")) is None


def test_the_client_sees_etcds_text_not_the_detail() -> None:
    exc = api_errors.MemberNotFoundError("8e9e05c52164694d")
    assert str(exc) == "etcdserver: member not found"
    assert exc.detail == "8e9e05c52164694d"


class _Aborted(Exception):
    pass


class _Context:
    """Records what `abort` sends, as grpc.aio's context would put it on the wire."""

    def __init__(self) -> None:
        self.sent: tuple[grpc.StatusCode, str] | None = None

    async def abort(self, code: grpc.StatusCode, text: str) -> None:
        self.sent = (code, text)
        raise _Aborted


async def _abort(exc: Exception) -> tuple[grpc.StatusCode, str] | None:
    ctx = _Context()
    with pytest.raises(_Aborted):
        await api_errors.abort(ctx, exc, "Test")
    return ctx.sent


def test_abort_sends_the_mapped_status() -> None:
    import asyncio

    sent = asyncio.run(_abort(mvcc_errors.CompactedError()))
    assert sent == (C.OUT_OF_RANGE, "etcdserver: mvcc: required revision has been compacted")
    sent = asyncio.run(_abort(RuntimeError("disk on fire")))
    assert sent == (C.UNKNOWN, "disk on fire")
