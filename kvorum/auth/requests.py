"""The auth requests that go through raft, and what applying one answers.

Reads (user/role get and list) do not go through raft: they are served locally after a
ReadIndex round, which is as linearizable and costs no log entry. Every write below is
proposed wrapped in `AsUser` when the proposer knows who asks, so each member checks the
same user against the same auth state when it applies the entry (etcd's request header).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Generic, TypeVar

from kvorum.auth.types import AuthInfo, Permission

__all__ = [
    "AsUser",
    "AuthDisableRequest",
    "AuthEnableRequest",
    "AuthRequest",
    "AuthResponse",
    "AuthenticateRequest",
    "RoleAddRequest",
    "RoleDeleteRequest",
    "RoleGrantPermissionRequest",
    "RoleRevokePermissionRequest",
    "UserAddRequest",
    "UserChangePasswordRequest",
    "UserDeleteRequest",
    "UserGrantRoleRequest",
    "UserRevokeRoleRequest",
]


@dataclass(frozen=True, slots=True)
class AuthEnableRequest:
    pass


@dataclass(frozen=True, slots=True)
class AuthDisableRequest:
    pass


@dataclass(frozen=True, slots=True)
class AuthenticateRequest:
    """The password was checked by the proposer; `token_prefix` is its random part."""

    name: str
    token_prefix: str


@dataclass(frozen=True, slots=True)
class UserAddRequest:
    """`password_hash` is bcrypt's, made by the proposer (empty with `no_password`)."""

    name: str
    password_hash: bytes
    no_password: bool = False


@dataclass(frozen=True, slots=True)
class UserDeleteRequest:
    name: str


@dataclass(frozen=True, slots=True)
class UserChangePasswordRequest:
    name: str
    password_hash: bytes


@dataclass(frozen=True, slots=True)
class UserGrantRoleRequest:
    user: str
    role: str


@dataclass(frozen=True, slots=True)
class UserRevokeRoleRequest:
    name: str
    role: str


@dataclass(frozen=True, slots=True)
class RoleAddRequest:
    name: str


@dataclass(frozen=True, slots=True)
class RoleDeleteRequest:
    role: str


@dataclass(frozen=True, slots=True)
class RoleGrantPermissionRequest:
    name: str
    permission: Permission


@dataclass(frozen=True, slots=True)
class RoleRevokePermissionRequest:
    role: str
    key: bytes
    range_end: bytes = b""


AuthRequest = (
    AuthEnableRequest
    | AuthDisableRequest
    | AuthenticateRequest
    | UserAddRequest
    | UserDeleteRequest
    | UserChangePasswordRequest
    | UserGrantRoleRequest
    | UserRevokeRoleRequest
    | RoleAddRequest
    | RoleDeleteRequest
    | RoleGrantPermissionRequest
    | RoleRevokePermissionRequest
)

R = TypeVar("R")


@dataclass(frozen=True, slots=True)
class AsUser(Generic[R]):
    """`request` as sent by `auth_info`'s user (never nested)."""

    auth_info: AuthInfo
    request: R


@dataclass(frozen=True, slots=True)
class AuthResponse:
    """An applied auth write; `token` is set for Authenticate only."""

    token: str = ""
