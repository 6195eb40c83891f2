"""The auth store's rules, as etcd 3.4's auth/store.go decides them, and its persistence."""

from __future__ import annotations

from pathlib import Path

import pytest

from kvorum.auth import (
    AuthFailedError,
    AuthInfo,
    AuthNotEnabledError,
    AuthOldRevisionError,
    AuthStore,
    InvalidAuthMgmtError,
    InvalidAuthTokenError,
    NoPasswordUserError,
    Permission,
    PermissionDeniedError,
    PermissionNotGrantedError,
    PermType,
    Role,
    RoleAlreadyExistError,
    RoleEmptyError,
    RoleNotFoundError,
    RoleNotGrantedError,
    RootRoleNotExistError,
    RootUserNotExistError,
    User,
    UserAlreadyExistError,
    UserEmptyError,
    UserNotFoundError,
)
from kvorum.backend import Backend

HASH = b"$2b$04$hash-as-made-by-the-proposer"


def enabled_store() -> AuthStore:
    store = AuthStore()
    store.user_add("root", HASH)
    store.user_grant_role("root", "root")
    store.auth_enable()
    return store


def test_enable_needs_root_user_with_root_role() -> None:
    store = AuthStore()
    with pytest.raises(RootUserNotExistError):
        store.auth_enable()
    store.user_add("root", HASH)
    with pytest.raises(RootRoleNotExistError):
        store.auth_enable()
    store.user_grant_role("root", "root")  # the root role need not exist as a record
    revision = store.revision
    store.auth_enable()
    assert store.enabled
    assert store.revision == revision  # enabling does not move the revision
    store.auth_enable()  # already on: ignored


def test_every_change_moves_the_revision_and_disable_does_too() -> None:
    store = AuthStore()
    assert store.revision == 1
    store.user_add("u", HASH)
    store.role_add("r")
    store.role_grant_permission("r", Permission(PermType.READ, b"k"))
    store.user_grant_role("u", "r")
    assert store.revision == 5
    store.user_grant_role("u", "r")  # already granted: no change, no revision
    assert store.revision == 5
    store.auth_disable()  # not enabled: nothing happens
    assert store.revision == 5
    enabled = enabled_store()
    before = enabled.revision
    enabled.auth_disable()
    assert not enabled.enabled
    assert enabled.revision == before + 1


def test_user_errors() -> None:
    store = AuthStore()
    with pytest.raises(UserEmptyError):
        store.user_add("", HASH)
    store.user_add("alice", HASH)
    with pytest.raises(UserAlreadyExistError):
        store.user_add("alice", b"")
    for call in (
        lambda: store.user_delete("bob"),
        lambda: store.user_change_password("bob", HASH),
        lambda: store.user_grant_role("bob", "root"),
        lambda: store.user_revoke_role("bob", "r"),
        lambda: store.user("bob"),
    ):
        with pytest.raises(UserNotFoundError):
            call()
    with pytest.raises(RoleNotFoundError):
        store.user_grant_role("alice", "nosuch")
    with pytest.raises(RoleNotGrantedError):
        store.user_revoke_role("alice", "root")


def test_roles_of_a_user_are_sorted_and_deleting_a_role_revokes_it() -> None:
    store = AuthStore()
    store.user_add("alice", HASH)
    for role in ("zeta", "alpha", "mid"):
        store.role_add(role)
        store.user_grant_role("alice", role)
    assert store.user("alice").roles == ("alpha", "mid", "zeta")
    store.role_delete("mid")
    assert store.user("alice").roles == ("alpha", "zeta")
    assert store.role_names() == ["alpha", "zeta"]
    with pytest.raises(RoleNotFoundError):
        store.role_delete("mid")


def test_role_errors_and_permission_order() -> None:
    store = AuthStore()
    with pytest.raises(RoleEmptyError):
        store.role_add("")
    store.role_add("r")
    with pytest.raises(RoleAlreadyExistError):
        store.role_add("r")
    store.role_grant_permission("r", Permission(PermType.READ, b"b", b"c"))
    store.role_grant_permission("r", Permission(PermType.WRITE, b"a"))
    store.role_grant_permission("r", Permission(PermType.READWRITE, b"b", b"c"))  # update
    assert store.role("r") == Role(
        "r", (Permission(PermType.WRITE, b"a"), Permission(PermType.READWRITE, b"b", b"c"))
    )
    with pytest.raises(PermissionNotGrantedError):
        store.role_revoke_permission("r", b"b")  # (b, "") was never granted
    store.role_revoke_permission("r", b"b", b"c")
    assert store.role("r").permissions == (Permission(PermType.WRITE, b"a"),)
    with pytest.raises(RoleNotFoundError):
        store.role_grant_permission("nosuch", Permission(PermType.READ, b"k"))


def test_root_is_protected_only_while_auth_is_enabled() -> None:
    store = enabled_store()
    store.role_add("root")
    with pytest.raises(InvalidAuthMgmtError):
        store.user_delete("root")
    with pytest.raises(InvalidAuthMgmtError):
        store.user_revoke_role("root", "root")
    with pytest.raises(InvalidAuthMgmtError):
        store.role_delete("root")
    store.auth_disable()
    store.user_revoke_role("root", "root")
    store.role_delete("root")
    store.user_delete("root")
    assert store.user_names() == []


def test_admin_check() -> None:
    store = enabled_store()
    store.user_add("alice", HASH)
    with pytest.raises(UserEmptyError):
        store.check_admin(None)
    with pytest.raises(UserNotFoundError):
        store.check_admin(AuthInfo("ghost", store.revision))
    with pytest.raises(PermissionDeniedError):
        store.check_admin(AuthInfo("alice", store.revision))
    store.check_admin(AuthInfo("root", store.revision))
    AuthStore().check_admin(None)  # auth off: anyone


def test_key_permission_checks() -> None:
    store = enabled_store()
    store.user_add("alice", HASH)
    store.role_add("r")
    store.role_grant_permission("r", Permission(PermType.READ, b"/a/", b"/a0"))
    store.user_grant_role("alice", "r")
    alice = AuthInfo("alice", store.revision)
    store.check_permitted(alice, b"/a/x", b"", write=False)
    store.check_permitted(alice, b"/a/", b"/a0", write=False)
    with pytest.raises(PermissionDeniedError):
        store.check_permitted(alice, b"/a/x", b"", write=True)
    with pytest.raises(PermissionDeniedError):
        store.check_permitted(alice, b"/b", b"", write=False)
    with pytest.raises(UserEmptyError):
        store.check_permitted(None, b"/a/x", b"", write=False)
    with pytest.raises(PermissionDeniedError):
        store.check_permitted(AuthInfo("ghost", store.revision), b"/a/x", b"", write=False)
    store.check_permitted(AuthInfo("root", store.revision), b"", b"\0", write=True)
    store.role_grant_permission("r", Permission(PermType.WRITE, b"/a/x"))
    with pytest.raises(AuthOldRevisionError):
        store.check_permitted(alice, b"/a/x", b"", write=True)
    store.check_permitted(AuthInfo("alice", store.revision), b"/a/x", b"", write=True)


def test_password_lookup_and_tokens() -> None:
    store = AuthStore()
    store.user_add("alice", HASH)
    with pytest.raises(AuthNotEnabledError):
        store.password_hash_for("alice")
    with pytest.raises(AuthNotEnabledError):
        store.authenticate("alice", "A" * 16, 9)
    store.user_add("root", HASH)
    store.user_grant_role("root", "root")
    store.user_add("cn", b"ignored", no_password=True)
    store.auth_enable()
    assert store.user("cn").password_hash == b""
    assert store.password_hash_for("alice") == (HASH, store.revision)
    with pytest.raises(AuthFailedError):
        store.password_hash_for("ghost")
    with pytest.raises(NoPasswordUserError):
        store.password_hash_for("cn")
    with pytest.raises(AuthFailedError):
        store.authenticate("cn", "A" * 16, 9)
    token = store.authenticate("alice", "A" * 16, 9)
    assert token == "AAAAAAAAAAAAAAAA.9"
    assert store.auth_info_from_token(token) == AuthInfo("alice", store.revision)
    store.user_change_password("alice", HASH)  # forgets alice's tokens
    with pytest.raises(InvalidAuthTokenError):
        store.auth_info_from_token(token)
    token = store.authenticate("alice", "B" * 16, 10)
    store.auth_disable()  # forgets every token
    with pytest.raises(InvalidAuthTokenError):
        store.auth_info_from_token(token)


def test_state_persists_in_the_backend_as_etcd_records(tmp_path: Path) -> None:
    backend = Backend(str(tmp_path / "db"))
    store = AuthStore(backend)
    store.user_add("root", HASH)
    store.user_grant_role("root", "root")
    store.user_add("cn", b"", no_password=True)
    store.role_add("r")
    store.role_grant_permission("r", Permission(PermType.READWRITE, b"a", b"\0"))
    store.user_grant_role("cn", "r")
    store.auth_enable()
    revision = store.revision
    backend.close()

    reopened = AuthStore(Backend(str(tmp_path / "db")))
    assert reopened.enabled
    assert reopened.revision == revision
    assert list(reopened.users()) == [
        User("cn", b"", ("r",), no_password=True),
        User("root", HASH, ("root",)),
    ]
    assert reopened.role("r") == Role("r", (Permission(PermType.READWRITE, b"a", b"\0"),))
    reopened.user_delete("cn")
    reopened.role_delete("r")
    reopened.reload()  # the batch holds the deletions: the reload sees them
    assert reopened.user_names() == ["root"]
    assert reopened.role_names() == []
