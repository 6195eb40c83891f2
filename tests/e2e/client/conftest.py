"""The one place the client's e2e tests get their server from.

``KVORUM_CLUSTER_BINARY`` (see ``kvorum.testing.pytest_plugin``) picks it: real etcd by
default, ``kvorum`` to run the same suite against kvorum. ``cluster1`` is one 1-member cluster
shared by a test module (tests there use distinct key prefixes); ``start_cluster`` makes a
fresh cluster of any size for tests that kill members.
"""

from __future__ import annotations

import asyncio
import shutil
from collections.abc import Callable, Coroutine, Iterator
from typing import Any, TypeVar

import pytest

from kvorum.testing import ETCDCTL, Cluster
from kvorum.testing.pytest_plugin import cluster_binary

T = TypeVar("T")
StartCluster = Callable[[int], Cluster]


def _require() -> list[str]:
    command = cluster_binary()
    for tool in (command[0], ETCDCTL):
        if shutil.which(tool) is None:
            pytest.skip(f"{tool} is not installed (etcd: run scripts/ensure-debian-packages)")
    return command


@pytest.fixture
def start_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[StartCluster]:
    """Start clusters of the selected binary; all are stopped (by pid) at teardown."""
    command = _require()
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
def cluster1(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    command = _require()
    with Cluster(command, 1, base_dir=tmp_path_factory.mktemp("client1-")) as cluster:
        yield cluster


def _run(coro: Coroutine[Any, Any, T], timeout_s: float = 30.0) -> T:
    return asyncio.run(asyncio.wait_for(coro, timeout_s))


@pytest.fixture
def arun() -> Callable[..., Any]:
    """Runs one async test body with an overall bound (the project has no pytest-asyncio)."""
    return _run
