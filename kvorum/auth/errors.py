"""Every error of the auth store, with etcd 3.4's texts and gRPC status, in one table.

The rows reuse `kvorum.mvcc.errors.ErrorSpec`: `text` is what etcd's `auth` package says,
`grpc_code`/`grpc_text` what its API layer (`rpctypes`) puts on the wire. Clients branch on the
wire text (etcdctl's `auth enable` creates the root role when it reads "root user does not have
root role"), so these are copied exactly.
"""

from __future__ import annotations

from typing import ClassVar

from kvorum.mvcc.errors import ErrorSpec

__all__ = [
    "ERRORS",
    "AuthError",
    "AuthFailedError",
    "AuthNotEnabledError",
    "AuthOldRevisionError",
    "InvalidAuthMgmtError",
    "InvalidAuthTokenError",
    "NoPasswordUserError",
    "PermissionDeniedError",
    "PermissionNotGrantedError",
    "RoleAlreadyExistError",
    "RoleEmptyError",
    "RoleNotFoundError",
    "RoleNotGrantedError",
    "RootRoleNotExistError",
    "RootUserNotExistError",
    "UserAlreadyExistError",
    "UserEmptyError",
    "UserNotFoundError",
]


def _row(text: str, code: str, wire: str) -> ErrorSpec:
    return ErrorSpec(f"auth: {text}", code, f"etcdserver: {wire}")


class AuthError(Exception):
    """Base of the auth store's errors; `spec` carries the texts and status."""

    spec: ClassVar[ErrorSpec]

    def __init__(self, detail: str = "") -> None:
        super().__init__(self.spec.text)
        self.detail = detail


class RootUserNotExistError(AuthError):
    spec = _row("root user does not exist", "FAILED_PRECONDITION", "root user does not exist")


class RootRoleNotExistError(AuthError):
    spec = _row(
        "root user does not have root role",
        "FAILED_PRECONDITION",
        "root user does not have root role",
    )


class UserAlreadyExistError(AuthError):
    spec = _row("user already exists", "FAILED_PRECONDITION", "user name already exists")


class UserEmptyError(AuthError):
    spec = _row("user name is empty", "INVALID_ARGUMENT", "user name is empty")


class UserNotFoundError(AuthError):
    spec = _row("user not found", "FAILED_PRECONDITION", "user name not found")


class RoleAlreadyExistError(AuthError):
    spec = _row("role already exists", "FAILED_PRECONDITION", "role name already exists")


class RoleNotFoundError(AuthError):
    spec = _row("role not found", "FAILED_PRECONDITION", "role name not found")


class RoleEmptyError(AuthError):
    spec = _row("role name is empty", "INVALID_ARGUMENT", "role name is empty")


class AuthFailedError(AuthError):
    spec = _row(
        "authentication failed, invalid user ID or password",
        "INVALID_ARGUMENT",
        "authentication failed, invalid user ID or password",
    )


class NoPasswordUserError(AuthError):
    """etcd 3.4 has no wire row for this one: its API layer sends its own text as UNKNOWN."""

    spec = ErrorSpec(
        "auth: authentication failed, password was given for no password user",
        "UNKNOWN",
        "auth: authentication failed, password was given for no password user",
    )


class PermissionDeniedError(AuthError):
    spec = _row("permission denied", "PERMISSION_DENIED", "permission denied")


class RoleNotGrantedError(AuthError):
    spec = _row(
        "role is not granted to the user",
        "FAILED_PRECONDITION",
        "role is not granted to the user",
    )


class PermissionNotGrantedError(AuthError):
    spec = _row(
        "permission is not granted to the role",
        "FAILED_PRECONDITION",
        "permission is not granted to the role",
    )


class AuthNotEnabledError(AuthError):
    spec = _row(
        "authentication is not enabled", "FAILED_PRECONDITION", "authentication is not enabled"
    )


class AuthOldRevisionError(AuthError):
    spec = _row("revision in header is old", "INVALID_ARGUMENT", "revision of auth store is old")


class InvalidAuthTokenError(AuthError):
    spec = _row("invalid auth token", "UNAUTHENTICATED", "invalid auth token")


class InvalidAuthMgmtError(AuthError):
    spec = _row("invalid auth management", "INVALID_ARGUMENT", "invalid auth management")


#: error class -> spec, the table the API layer maps through (with mvcc's and the lessor's).
ERRORS: dict[type[AuthError], ErrorSpec] = {
    cls: cls.spec
    for cls in (
        RootUserNotExistError,
        RootRoleNotExistError,
        UserAlreadyExistError,
        UserEmptyError,
        UserNotFoundError,
        RoleAlreadyExistError,
        RoleNotFoundError,
        RoleEmptyError,
        AuthFailedError,
        NoPasswordUserError,
        PermissionDeniedError,
        RoleNotGrantedError,
        PermissionNotGrantedError,
        AuthNotEnabledError,
        AuthOldRevisionError,
        InvalidAuthTokenError,
        InvalidAuthMgmtError,
    )
}
