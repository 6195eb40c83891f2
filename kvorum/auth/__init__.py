"""Auth: users, roles, permissions, tokens — etcd 3.4's auth store.

`store.AuthStore` holds the replicated state (mutated only by the applier), `perms` answers
"may this user read/write this range", `tokens` picks the token provider (`--auth-token`) and
keeps the simple tokens of one member, `jwt` signs and verifies JWTs, `passwords` makes and
checks bcrypt hashes (off the event loop), `requests` the writes that go through raft,
`errors` the error table with etcd's texts.
"""

from kvorum.auth.errors import (
    ERRORS,
    AuthError,
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
from kvorum.auth.perms import RangePermissions
from kvorum.auth.store import AuthStore
from kvorum.auth.tokens import (
    DEFAULT_TOKEN_TTL_S,
    SimpleTokens,
    TokenOptionsError,
    TokenProvider,
    new_token_prefix,
    token_index,
    token_provider,
)
from kvorum.auth.types import ROOT_ROLE, ROOT_USER, AuthInfo, Permission, PermType, Role, User

__all__ = [
    "DEFAULT_TOKEN_TTL_S",
    "ERRORS",
    "ROOT_ROLE",
    "ROOT_USER",
    "AuthError",
    "AuthFailedError",
    "AuthInfo",
    "AuthNotEnabledError",
    "AuthOldRevisionError",
    "AuthStore",
    "InvalidAuthMgmtError",
    "InvalidAuthTokenError",
    "NoPasswordUserError",
    "PermType",
    "Permission",
    "PermissionDeniedError",
    "PermissionNotGrantedError",
    "RangePermissions",
    "Role",
    "RoleAlreadyExistError",
    "RoleEmptyError",
    "RoleNotFoundError",
    "RoleNotGrantedError",
    "RootRoleNotExistError",
    "RootUserNotExistError",
    "SimpleTokens",
    "TokenOptionsError",
    "TokenProvider",
    "User",
    "UserAlreadyExistError",
    "UserEmptyError",
    "UserNotFoundError",
    "new_token_prefix",
    "token_index",
    "token_provider",
]
