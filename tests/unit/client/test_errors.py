"""etcd's status texts map to the named exceptions through the one table."""

from __future__ import annotations

import pytest

from kvorum.client import errors as e

MVCC = "etcdserver: mvcc: "


@pytest.mark.parametrize(
    ("code", "text", "cls"),
    [
        ("OUT_OF_RANGE", MVCC + "required revision has been compacted", e.CompactedError),
        ("OUT_OF_RANGE", MVCC + "required revision is a future revision", e.FutureRevisionError),
        ("NOT_FOUND", "etcdserver: requested lease not found", e.LeaseNotFoundError),
        ("UNAVAILABLE", "etcdserver: no leader", e.NoLeaderError),
        ("UNAVAILABLE", "etcdserver: request timed out", e.RequestTimedOutError),
        ("INVALID_ARGUMENT", "etcdserver: too many operations in txn request", e.TooManyOpsError),
        ("INVALID_ARGUMENT", "etcdserver: duplicate key given in txn request", e.DuplicateKeyError),
        ("INVALID_ARGUMENT", "etcdserver: key is not provided", e.KeyNotProvidedError),
        ("INVALID_ARGUMENT", "etcdserver: request is too large", e.RequestTooLargeError),
        ("PERMISSION_DENIED", "etcdserver: permission denied", e.PermissionDeniedError),
        (
            "INVALID_ARGUMENT",
            "etcdserver: authentication failed, invalid user ID or password",
            e.AuthFailedError,
        ),
        ("NOT_FOUND", "etcdserver: member not found", e.MemberNotFoundError),
        ("UNKNOWN", "election: no leader", e.ElectionNoLeaderError),
    ],
)  # fmt: skip
def test_known_texts(code: str, text: str, cls: type[e.EtcdError]) -> None:
    err = e.error_from_status(code, text)
    assert type(err) is cls
    assert (err.code, err.text, str(err)) == (code, text, text)
    assert isinstance(err, e.EtcdError)


def test_timeouts_are_timeout_errors_and_unavailable_family() -> None:
    timed_out = e.error_from_status("UNAVAILABLE", "etcdserver: request timed out")
    assert isinstance(timed_out, TimeoutError)
    assert isinstance(timed_out, e.Unavailable)
    deadline = e.error_from_status("DEADLINE_EXCEEDED", "Deadline Exceeded")
    assert type(deadline) is e.DeadlineExceededError
    assert isinstance(deadline, TimeoutError)
    assert not isinstance(deadline, e.Unavailable)


def test_unknown_texts_fall_back_on_the_code() -> None:
    assert type(e.error_from_status("UNAVAILABLE", "failed to connect")) is e.Unavailable
    assert type(e.error_from_status("INTERNAL", "boom")) is e.EtcdError


def test_a_transport_reset_reported_as_internal_is_unavailable() -> None:
    """gRPC's C core says INTERNAL "Internal error from Core" when a member dies under a call
    being opened; watch, keep-alive and retries must fail over as for UNAVAILABLE."""
    err = e.error_from_status("INTERNAL", "Internal error from Core")
    assert type(err) is e.Unavailable
    assert err.code == "INTERNAL"


def test_every_table_text_is_etcds_and_every_class_is_exported() -> None:
    for text, cls in e.ERROR_TABLE.items():
        assert text.startswith(("etcdserver: ", "election: "))
        assert cls.__name__ in e.__all__


class _FakeRpcError:
    """The two methods grpc's RpcError offers (sync and aio alike)."""

    class _Code:
        name = "NOT_FOUND"

    def code(self) -> object:
        return self._Code()

    def details(self) -> str:
        return "etcdserver: requested lease not found"


def test_error_from_rpc_reads_code_and_details() -> None:
    err = e.error_from_rpc(_FakeRpcError())
    assert isinstance(err, e.LeaseNotFoundError)
    assert err.code == "NOT_FOUND"
