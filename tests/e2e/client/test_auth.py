"""User/password authentication: the token from Authenticate travels as ``token`` metadata."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from kvorum.client import AsyncClient, AuthFailedError, PermissionDeniedError, UserEmptyError
from kvorum.testing import Cluster


def _ctl(cluster: Cluster, *args: str) -> None:
    rc, out, err = cluster.etcdctl(*args)
    assert rc == 0, (args, out, err)


def test_password_auth_and_permissions(
    server: str, request: pytest.FixtureRequest, arun: Callable[..., Any]
) -> None:
    cluster1: Cluster = request.getfixturevalue("cluster1")
    _ctl(cluster1, "user", "add", "root", "--new-user-password=rootpw")
    _ctl(cluster1, "user", "add", "alice", "--new-user-password=alicepw")
    _ctl(cluster1, "auth", "enable")

    async def body() -> None:
        async with AsyncClient(cluster1.endpoints, user="root", password="rootpw") as root:
            await root.put("auth/k", b"v")
            assert (await root.get("auth/k")).value == b"v"
            async with root.watch("auth/k", start_revision=1) as watch:
                async for event in watch:
                    assert event.kv.value == b"v"
                    break
        async with AsyncClient(cluster1.endpoints, user="root", password="wrong") as bad:
            with pytest.raises(AuthFailedError):
                await bad.get("auth/k")
        async with AsyncClient(cluster1.endpoints) as anonymous:
            with pytest.raises(UserEmptyError):
                await anonymous.get("auth/k")
        async with AsyncClient(cluster1.endpoints, user="alice", password="alicepw") as alice:
            with pytest.raises(PermissionDeniedError):
                await alice.get("auth/k")

    try:
        arun(body())
    finally:
        _ctl(cluster1, "--user=root:rootpw", "auth", "disable")
