"""The records of the auth store: users, roles, permissions, and who is asking.

Names are `str` (etcd's API carries them as proto `string`); keys and range ends are `bytes`.
A permission's `range_end` follows etcd's conventions: empty for one key, ``b"\\0"`` for every
key from `key` on, anything else for the half-open range ``[key, range_end)``.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

__all__ = [
    "ROOT_ROLE",
    "ROOT_USER",
    "AuthInfo",
    "PermType",
    "Permission",
    "Role",
    "User",
]

#: the user `AuthEnable` requires, and the role that grants everything (etcd's names).
ROOT_USER = "root"
ROOT_ROLE = "root"


class PermType(enum.IntEnum):
    """authpb.Permission.Type."""

    READ = 0
    WRITE = 1
    READWRITE = 2


@dataclass(frozen=True, slots=True)
class Permission:
    perm_type: PermType
    key: bytes
    range_end: bytes = b""


@dataclass(frozen=True, slots=True)
class User:
    """`password_hash` is the bcrypt hash (empty for a user added with no password);
    `roles` are kept sorted, as etcd keeps them."""

    name: str
    password_hash: bytes = b""
    roles: tuple[str, ...] = ()
    no_password: bool = False

    @property
    def is_root(self) -> bool:
        """Holds the root role: every permission, and auth management."""
        return ROOT_ROLE in self.roles


@dataclass(frozen=True, slots=True)
class Role:
    """`permissions` are kept sorted by key (stable for equal keys), as etcd keeps them."""

    name: str
    permissions: tuple[Permission, ...] = ()


@dataclass(frozen=True, slots=True)
class AuthInfo:
    """Who a request comes from: the user its token names and the auth revision it was
    checked against (etcd's AuthInfo; revision 0 means no user was given)."""

    username: str
    revision: int
