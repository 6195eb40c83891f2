"""Auth requests through the payload format and the applier, as committed entries.

Each member applies the same entries to its own backend: the same users, roles, revision and
tokens come out, admin checks included, and the state survives a reopen (exactly once).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from kvorum.apply import Applier, ApplyResult, PayloadError, Request, decode_payload, encode_payload
from kvorum.apply.payload import Op
from kvorum.auth import (
    AuthFailedError,
    AuthInfo,
    InvalidAuthMgmtError,
    Permission,
    PermissionDeniedError,
    PermType,
    UserEmptyError,
    UserNotFoundError,
)
from kvorum.auth.requests import (
    AsUser,
    AuthDisableRequest,
    AuthEnableRequest,
    AuthenticateRequest,
    AuthResponse,
    RoleAddRequest,
    RoleDeleteRequest,
    RoleGrantPermissionRequest,
    RoleRevokePermissionRequest,
    UserAddRequest,
    UserChangePasswordRequest,
    UserDeleteRequest,
    UserGrantRoleRequest,
    UserRevokeRoleRequest,
)
from kvorum.backend import Backend
from kvorum.membership import AlarmStore, MembershipStore
from kvorum.mvcc import MvccStore
from kvorum.raft.types import Entry, EntryType
from kvorum.server.envelope import encode_envelope

HASH = b"$2b$04$abcdefghijklmnopqrstuuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ01"
PREFIX = "abcdefghijklmnop"

ALL_REQUESTS: list[Request] = [
    AuthEnableRequest(),
    AuthDisableRequest(),
    AuthenticateRequest("alice", PREFIX),
    UserAddRequest("alice", HASH),
    UserAddRequest("cn", b"", no_password=True),
    UserDeleteRequest("alice"),
    UserChangePasswordRequest("alice", HASH),
    UserGrantRoleRequest("alice", "r"),
    UserRevokeRoleRequest("alice", "r"),
    RoleAddRequest("r"),
    RoleDeleteRequest("r"),
    RoleGrantPermissionRequest("r", Permission(PermType.READWRITE, b"k", b"\0")),
    RoleRevokePermissionRequest("r", b"k", b"\0"),
    AsUser(AuthInfo("root", 7), RoleAddRequest("r")),
    AsUser(AuthInfo("", 0), UserAddRequest("ü", HASH)),
]


@pytest.mark.parametrize("request_", ALL_REQUESTS, ids=lambda r: type(r).__name__)
def test_every_auth_request_round_trips(request_: Request) -> None:
    assert decode_payload(encode_payload(request_)) == request_


@pytest.mark.parametrize(
    "payload",
    [
        bytes([Op.AS_USER]) + b"\x00" * 5,  # header cut short
        bytes([Op.AS_USER]) + b"\x00" * 8 + b"\x00\x09root",  # name cut short
        encode_payload(AsUser(AuthInfo("a", 1), RoleAddRequest("r")))[:1]
        + encode_payload(AsUser(AuthInfo("a", 1), RoleAddRequest("r")))[1:12]
        + encode_payload(AsUser(AuthInfo("b", 1), RoleAddRequest("r"))),  # nested AS_USER
        bytes([Op.AUTHENTICATE]) + b"short",
        bytes([Op.AUTHENTICATE]) + b"0123456789abcdef" + b"alice",  # digits in the prefix
        bytes([Op.ROLE_ADD]) + b"\xff\xff",
    ],
)
def test_malformed_auth_payloads_are_refused(payload: bytes) -> None:
    with pytest.raises(PayloadError):
        decode_payload(payload)


def test_nested_as_user_cannot_be_encoded() -> None:
    with pytest.raises(TypeError):
        encode_payload(AsUser(AuthInfo("a", 1), AsUser(AuthInfo("b", 1), RoleAddRequest("r"))))


class Member:
    """One member's apply side over its own backend."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.index = 0
        self.open()

    def open(self) -> None:
        self.backend = Backend(os.path.join(self.path, "db"))
        kv = MvccStore(self.backend)
        self.applier = Applier(
            self.backend, kv, MembershipStore(self.backend), AlarmStore(self.backend)
        )

    def apply(self, request: Request, index: int) -> ApplyResult:
        entry = Entry(3, index, EntryType.NORMAL, encode_envelope(index, encode_payload(request)))
        batch = self.applier.apply([entry])
        return batch.results[index]

    def close(self) -> None:
        self.backend.close()


@pytest.fixture
def members(tmp_path: Path) -> Iterator[tuple[Member, Member]]:
    a, b = Member(str(tmp_path / "a")), Member(str(tmp_path / "b"))
    yield a, b
    a.close()
    b.close()


def root_as(store_revision: int) -> AuthInfo:
    return AuthInfo("root", store_revision)


def test_members_applying_the_same_entries_agree(members: tuple[Member, Member]) -> None:
    script: list[Request] = [
        UserAddRequest("root", HASH),
        UserGrantRoleRequest("root", "root"),
        UserAddRequest("alice", HASH),
        RoleAddRequest("r"),
        RoleGrantPermissionRequest("r", Permission(PermType.READ, b"a", b"b")),
        UserGrantRoleRequest("alice", "r"),
        AuthEnableRequest(),
        # Auth is on: management needs root.
        RoleAddRequest("anonymous"),
        AsUser(AuthInfo("alice", 8), RoleAddRequest("by-alice")),
        AsUser(AuthInfo("ghost", 8), RoleAddRequest("by-ghost")),
        AsUser(root_as(8), UserDeleteRequest("root")),
        AsUser(root_as(8), RoleAddRequest("by-root")),
        AuthenticateRequest("alice", PREFIX),
        AuthenticateRequest("nobody", PREFIX),
    ]
    expected: list[type[Exception] | AuthResponse] = [
        *[AuthResponse()] * 7,
        UserEmptyError,
        PermissionDeniedError,
        UserNotFoundError,
        InvalidAuthMgmtError,
        AuthResponse(),
        AuthResponse(f"{PREFIX}.13"),  # the token ends with the entry's index
        AuthFailedError,
    ]
    for member in members:
        results = [member.apply(req, i) for i, req in enumerate(script, start=1)]
        for i, (want, got) in enumerate(zip(expected, results, strict=True), start=1):
            if isinstance(want, AuthResponse):
                assert got == want, (i, got)
            else:
                assert isinstance(got, want), (i, got)
    a, b = (m.applier.auth for m in members)
    assert a.user_names() == b.user_names() == ["alice", "root"]
    assert a.role_names() == b.role_names() == ["by-root", "r"]
    assert a.revision == b.revision == 8  # 1, then six changes and by-root's role
    assert a.auth_info_from_token(f"{PREFIX}.13") == AuthInfo("alice", 8)
    assert b.auth_info_from_token(f"{PREFIX}.13") == AuthInfo("alice", 8)


def test_auth_state_survives_reopen_and_is_applied_once(members: tuple[Member, Member]) -> None:
    member, _ = members
    member.apply(UserAddRequest("root", HASH), 1)
    member.apply(UserGrantRoleRequest("root", "root"), 2)
    member.apply(AuthEnableRequest(), 3)
    member.backend.batch.commit()
    member.close()
    member.open()
    auth = member.applier.auth
    assert auth.enabled
    assert auth.revision == 3
    # A replayed entry is skipped: the user is not added twice (no "already exists").
    entry = Entry(
        3, 1, EntryType.NORMAL, encode_envelope(1, encode_payload(UserAddRequest("x", HASH)))
    )
    assert member.applier.apply([entry]).skipped == 1
    assert auth.user_names() == ["root"]
    assert isinstance(member.apply(AuthDisableRequest(), 4), UserEmptyError)
    assert member.apply(AsUser(root_as(3), AuthDisableRequest()), 5) == AuthResponse()
    assert not auth.enabled
