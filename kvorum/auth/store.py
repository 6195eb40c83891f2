"""The auth store: users, roles, the enabled flag and the auth revision, as etcd 3.4 keeps them.

Every mutation here is called by the applier with a committed entry, so every member makes
the same ones in the same order; each check and error mirrors etcd's `auth/store.go`
(including its quirks, named where they occur). Reads serve the API layer.

Invariants:

* The cached state equals the backend buckets: each mutation writes through the backend's
  open batch (the same LMDB transaction as the entry's applied index) and updates the cache
  in the same call. `reload` rebuilds the cache after the backend file was replaced.
* The auth revision grows by one on every mutation that changes users, roles or disables
  auth (etcd's commitRevision); enabling auth does not change it. A store that never
  changed is at revision 1 (etcd writes 1 when it creates the buckets; here 1 is implied).
* Roles of a user are sorted; permissions of a role are sorted by key (stable), as etcd's.

Bucket layout (etcd's, so the records read the same): `auth_users` name -> authpb.User,
`auth_roles` name -> authpb.Role, `auth` "authEnabled" -> 0x01/0x00 and "authRevision" -> 8
bytes big-endian. Threads: the event loop (which is the apply thread) only.
"""

from __future__ import annotations

import bisect
import logging
import struct
from collections.abc import Iterator
from typing import TYPE_CHECKING

from kvorum.api.pb.authpb import auth_pb2
from kvorum.auth.errors import (
    AuthFailedError,
    AuthNotEnabledError,
    AuthOldRevisionError,
    InvalidAuthMgmtError,
    InvalidAuthTokenError,
    NoPasswordUserError,
    PermissionDeniedError,
    PermissionNotGrantedError,
    RoleAlreadyExistError,
    RoleEmptyError,
    RoleNotFoundError,
    RoleNotGrantedError,
    RootRoleNotExistError,
    RootUserNotExistError,
    UserAlreadyExistError,
    UserEmptyError,
    UserNotFoundError,
)
from kvorum.auth.passwords import DEFAULT_BCRYPT_COST
from kvorum.auth.perms import RangePermissions
from kvorum.auth.tokens import SimpleTokens, TokenProvider
from kvorum.auth.types import ROOT_ROLE, ROOT_USER, AuthInfo, Permission, PermType, Role, User
from kvorum.backend import Backend, schema

if TYPE_CHECKING:
    from lmdb import _Database

__all__ = ["AuthStore", "decode_role", "decode_user", "encode_role", "encode_user"]

logger = logging.getLogger("kvorum.auth")

_ENABLED_KEY = b"authEnabled"
_REVISION_KEY = b"authRevision"
_ENABLED = b"\x01"
_DISABLED = b"\x00"
_REVISION = struct.Struct(">Q")
_INITIAL_REVISION = 1


# --- records <-> authpb --------------------------------------------------------------------


def encode_user(user: User) -> bytes:
    return auth_pb2.User(
        name=user.name.encode(),
        password=user.password_hash,
        roles=list(user.roles),
        options=auth_pb2.UserAddOptions(no_password=user.no_password),
    ).SerializeToString()


def decode_user(data: bytes) -> User:
    msg = auth_pb2.User()
    msg.ParseFromString(data)
    return User(msg.name.decode(), bytes(msg.password), tuple(msg.roles), msg.options.no_password)


def encode_role(role: Role) -> bytes:
    return auth_pb2.Role(
        name=role.name.encode(),
        keyPermission=[
            auth_pb2.Permission(permType=p.perm_type.name, key=p.key, range_end=p.range_end)
            for p in role.permissions
        ],
    ).SerializeToString()


def decode_role(data: bytes) -> Role:
    msg = auth_pb2.Role()
    msg.ParseFromString(data)
    perms = tuple(
        Permission(PermType(p.permType), bytes(p.key), bytes(p.range_end))
        for p in msg.keyPermission
    )
    return Role(msg.name.decode(), perms)


class AuthStore:
    """See the module docstring. `backend` None keeps everything in memory (tests)."""

    def __init__(
        self,
        backend: Backend | None = None,
        tokens: TokenProvider | None = None,
        *,
        bcrypt_cost: int = DEFAULT_BCRYPT_COST,
        cn_as_user: bool = False,
    ) -> None:
        """`bcrypt_cost` is what the API layer hashes new passwords with (`--bcrypt-cost`);
        `cn_as_user` lets a verified client certificate's common name stand for the user
        of a call without a token (etcd does so with `--client-cert-auth`)."""
        self._backend = backend
        self.tokens: TokenProvider = tokens if tokens is not None else SimpleTokens()
        self.bcrypt_cost = bcrypt_cost
        self.cn_as_user = cn_as_user
        self._enabled = False
        self._revision = _INITIAL_REVISION
        self._users: dict[str, User] = {}
        self._roles: dict[str, Role] = {}
        #: user name -> merged permissions; dropped whenever a user or role changes.
        self._perm_cache: dict[str, RangePermissions] = {}
        self.reload()

    # --- persistence ----------------------------------------------------------------------

    def _db(self, name: bytes) -> _Database:
        assert self._backend is not None
        # Fetched per use: a backend restore or defragment reopens the bucket handles.
        return self._backend.db(name)

    def reload(self) -> None:
        """Re-read everything from the backend (at start, and after a snapshot replaced it)."""
        self._perm_cache.clear()
        if self._backend is None:
            return
        with self._backend.view() as txn:
            enabled = txn.get(_ENABLED_KEY, db=self._db(schema.AUTH))
            revision = txn.get(_REVISION_KEY, db=self._db(schema.AUTH))
            users = list(txn.cursor(db=self._db(schema.AUTH_USERS)).iternext())
            roles = list(txn.cursor(db=self._db(schema.AUTH_ROLES)).iternext())
        self._enabled = enabled is not None and bytes(enabled) == _ENABLED
        self._revision = _REVISION.unpack(bytes(revision))[0] if revision else _INITIAL_REVISION
        self._users = {u.name: u for u in (decode_user(bytes(v)) for _, v in users)}
        self._roles = {r.name: r for r in (decode_role(bytes(v)) for _, v in roles)}

    def _put(self, bucket: bytes, key: bytes, value: bytes) -> None:
        if self._backend is not None:
            self._backend.batch.write().put(key, value, db=self._db(bucket))

    def _delete(self, bucket: bytes, key: bytes) -> None:
        if self._backend is not None:
            self._backend.batch.write().delete(key, db=self._db(bucket))

    def _save_user(self, user: User) -> None:
        self._users[user.name] = user
        self._perm_cache.pop(user.name, None)
        self._put(schema.AUTH_USERS, user.name.encode(), encode_user(user))

    def _save_role(self, role: Role) -> None:
        self._roles[role.name] = role
        self._perm_cache.clear()  # etcd too: one role change invalidates every user's cache
        self._put(schema.AUTH_ROLES, role.name.encode(), encode_role(role))

    def _set_enabled(self, enabled: bool) -> None:
        self._enabled = enabled
        self._put(schema.AUTH, _ENABLED_KEY, _ENABLED if enabled else _DISABLED)

    def _commit_revision(self) -> None:
        self._revision += 1
        self._put(schema.AUTH, _REVISION_KEY, _REVISION.pack(self._revision))

    # --- state ----------------------------------------------------------------------------

    @property
    def enabled(self) -> bool:
        return self._enabled

    @property
    def revision(self) -> int:
        return self._revision

    def user(self, name: str) -> User:
        user = self._users.get(name)
        if user is None:
            raise UserNotFoundError(name)
        return user

    def role(self, name: str) -> Role:
        role = self._roles.get(name)
        if role is None:
            raise RoleNotFoundError(name)
        return role

    def user_names(self) -> list[str]:
        """Sorted as the bucket (bytes) orders them."""
        return sorted(self._users, key=str.encode)

    def role_names(self) -> list[str]:
        return sorted(self._roles, key=str.encode)

    def users(self) -> Iterator[User]:
        for name in self.user_names():
            yield self._users[name]

    # --- checks ---------------------------------------------------------------------------

    def check_admin(self, info: AuthInfo | None) -> None:
        """etcd's IsAdminPermitted: with auth on, only a user holding the root role passes."""
        if not self._enabled:
            return
        if info is None or not info.username:
            raise UserEmptyError
        if not self.user(info.username).is_root:
            raise PermissionDeniedError(info.username)

    def check_permitted(
        self, info: AuthInfo | None, key: bytes, range_end: bytes, *, write: bool
    ) -> None:
        """etcd's isOpPermitted: may `info`'s user read (or write) all of [key, range_end)?"""
        if not self._enabled:
            return
        if info is None or info.revision == 0:
            raise UserEmptyError
        if info.revision < self._revision:
            raise AuthOldRevisionError(f"{info.revision} < {self._revision}")
        user = self._users.get(info.username)
        if user is None:
            raise PermissionDeniedError(f"no user {info.username!r}")
        if user.is_root:
            return
        perms = self._perm_cache.get(user.name)
        if perms is None:
            perms = RangePermissions.of(
                p
                for role in user.roles
                if role in self._roles
                for p in self._roles[role].permissions
            )
            self._perm_cache[user.name] = perms
        allowed = perms.can_write(key, range_end) if write else perms.can_read(key, range_end)
        if not allowed:
            raise PermissionDeniedError(info.username)

    def has_role(self, username: str, role: str) -> bool:
        user = self._users.get(username)
        return user is not None and role in user.roles

    def password_hash_for(self, name: str) -> tuple[bytes, int]:
        """The hash to check a password against, and the auth revision it was read at
        (etcd's CheckPassword up to the bcrypt comparison, which the caller runs off-loop)."""
        if not self._enabled:
            raise AuthNotEnabledError
        user = self._users.get(name)
        if user is None:
            raise AuthFailedError(f"no user {name!r}")
        if user.no_password:
            raise NoPasswordUserError(name)
        return user.password_hash, self._revision

    def auth_info_from_token(self, token: str) -> AuthInfo:
        """The user a token names, and the auth revision to check it at: the current one
        for a simple token, the one it was issued at for a JWT (etcd's)."""
        info = self.tokens.lookup(token, self._revision)
        if info is None:
            raise InvalidAuthTokenError
        return info

    # --- mutations (apply only) -----------------------------------------------------------

    def auth_enable(self) -> None:
        if self._enabled:
            logger.info("authentication is already enabled; ignored auth enable request")
            return
        root = self._users.get(ROOT_USER)
        if root is None:
            raise RootUserNotExistError
        if not root.is_root:
            raise RootRoleNotExistError
        self._set_enabled(True)
        self._perm_cache.clear()
        logger.info("enabled authentication")

    def auth_disable(self) -> None:
        if not self._enabled:
            return
        self._set_enabled(False)
        self._commit_revision()
        self.tokens.clear()
        logger.info("disabled authentication")

    def authenticate(self, name: str, token_prefix: str, index: int) -> str:
        """Issue a token for `name` (its password already checked): ``<prefix>.<index>``
        for simple tokens, a JWT of this revision with `--auth-token jwt`."""
        if not self._enabled:
            raise AuthNotEnabledError
        user = self._users.get(name)
        if user is None or user.no_password:
            raise AuthFailedError(name)
        return self.tokens.issue(name, self._revision, token_prefix, index)

    def user_add(self, name: str, password_hash: bytes, no_password: bool = False) -> None:
        if not name:
            raise UserEmptyError
        if name in self._users:
            raise UserAlreadyExistError(name)
        self._save_user(User(name, b"" if no_password else password_hash, (), no_password))
        self._commit_revision()
        logger.info("added a user", extra={"user_name": name})

    def user_delete(self, name: str) -> None:
        if self._enabled and name == ROOT_USER:
            raise InvalidAuthMgmtError("cannot delete 'root' user")
        self.user(name)
        del self._users[name]
        self._perm_cache.pop(name, None)
        self._delete(schema.AUTH_USERS, name.encode())
        self._commit_revision()
        self.tokens.invalidate_user(name)
        logger.info("deleted a user", extra={"user_name": name})

    def user_change_password(self, name: str, password_hash: bytes) -> None:
        user = self.user(name)
        self._save_user(User(name, password_hash, user.roles, user.no_password))
        self._commit_revision()
        self.tokens.invalidate_user(name)
        logger.info("changed a password of a user", extra={"user_name": name})

    def user_grant_role(self, username: str, role: str) -> None:
        user = self.user(username)
        # The root role need not exist as a record: granting it is how root is made.
        if role != ROOT_ROLE:
            self.role(role)
        if role in user.roles:
            logger.warning("ignored grant role request to a user", extra={"user_name": username})
            return  # no revision change, as etcd
        self._save_user(
            User(
                user.name, user.password_hash, tuple(sorted((*user.roles, role))), user.no_password
            )
        )
        self._commit_revision()

    def user_revoke_role(self, name: str, role: str) -> None:
        if self._enabled and name == ROOT_USER and role == ROOT_ROLE:
            raise InvalidAuthMgmtError("'root' user cannot revoke 'root' role")
        user = self.user(name)
        kept = tuple(r for r in user.roles if r != role)
        if len(kept) == len(user.roles):
            raise RoleNotGrantedError(f"{role} of {name}")
        self._save_user(User(user.name, user.password_hash, kept, user.no_password))
        self._commit_revision()

    def role_add(self, name: str) -> None:
        if not name:
            raise RoleEmptyError
        if name in self._roles:
            raise RoleAlreadyExistError(name)
        self._save_role(Role(name))
        self._commit_revision()

    def role_delete(self, name: str) -> None:
        if self._enabled and name == ROOT_ROLE:
            raise InvalidAuthMgmtError("cannot delete 'root' role")
        self.role(name)
        del self._roles[name]
        self._perm_cache.clear()
        self._delete(schema.AUTH_ROLES, name.encode())
        for user in list(self.users()):
            if name in user.roles:
                kept = tuple(r for r in user.roles if r != name)
                self._save_user(User(user.name, user.password_hash, kept, user.no_password))
        self._commit_revision()

    def role_grant_permission(self, name: str, perm: Permission) -> None:
        role = self.role(name)
        perms = list(role.permissions)
        keys = [p.key for p in perms]
        # etcd looks only at the first permission with this key: an equal (key, range_end)
        # later in the run is not found, and the new one is added beside it.
        i = bisect.bisect_left(keys, perm.key)
        if i < len(perms) and perms[i].key == perm.key and perms[i].range_end == perm.range_end:
            perms[i] = perm
        else:
            perms.append(perm)
            perms.sort(key=lambda p: p.key)  # stable: equal keys keep their order
        self._save_role(Role(role.name, tuple(perms)))
        self._commit_revision()

    def role_revoke_permission(self, name: str, key: bytes, range_end: bytes = b"") -> None:
        role = self.role(name)
        kept = tuple(p for p in role.permissions if p.key != key or p.range_end != range_end)
        if len(kept) == len(role.permissions):
            raise PermissionNotGrantedError(name)
        self._save_role(Role(role.name, kept))
        self._commit_revision()
