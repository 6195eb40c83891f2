"""The one place the client's e2e tests get their server from.

Every test runs against real etcd and against kvorum (``server`` is ``"etcd"`` or ``"kvorum"``);
``KVORUM_CLUSTER_BINARY`` (see ``kvorum.testing.pytest_plugin``), when set, runs only that one.
``cluster1`` is one 1-member cluster shared by a test module (tests there use distinct key
prefixes); ``start_cluster`` makes a fresh cluster of any size for tests that kill members.
"""

from __future__ import annotations

import asyncio
import os
import shutil
from collections.abc import Callable, Coroutine, Iterator
from typing import Any, TypeVar

import pytest

from kvorum.testing import ETCDCTL, Cluster, binary_for
from kvorum.testing.pytest_plugin import BINARY_ENV

T = TypeVar("T")
StartCluster = Callable[[int], Cluster]


SERVERS = (os.environ[BINARY_ENV],) if os.environ.get(BINARY_ENV) else ("etcd", "kvorum")


@pytest.fixture(scope="module", params=SERVERS)
def server(request: pytest.FixtureRequest) -> str:
    """Which server the module's tests run against (each test runs once per server)."""
    return str(request.param)


def _require(server: str) -> list[str]:
    command = binary_for(server)
    for tool in (command[0], ETCDCTL):
        if shutil.which(tool) is None:
            pytest.skip(f"{tool} is not installed (etcd: run scripts/ensure-debian-packages)")
    return command


@pytest.fixture
def start_cluster(server: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[StartCluster]:
    """Start clusters of ``server``; all are stopped (by pid) at teardown."""
    command = _require(server)
    clusters: list[Cluster] = []

    def start(size: int) -> Cluster:
        cluster = Cluster(command, size, base_dir=tmp_path_factory.mktemp(f"client{size}-"))
        clusters.append(cluster)
        return cluster.start()

    try:
        yield start
    finally:
        for cluster in clusters:
            cluster.stop()


@pytest.fixture(scope="module")
def cluster1(server: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    command = _require(server)
    with Cluster(command, 1, base_dir=tmp_path_factory.mktemp("client1-")) as cluster:
        yield cluster


def _run(coro: Coroutine[Any, Any, T], timeout_s: float = 30.0) -> T:
    return asyncio.run(asyncio.wait_for(coro, timeout_s))


@pytest.fixture
def arun() -> Callable[..., Any]:
    """Runs one async test body with an overall bound (the project has no pytest-asyncio)."""
    return _run
