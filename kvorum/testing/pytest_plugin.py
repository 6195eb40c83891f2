"""pytest fixtures for real-process clusters.

Enable with ``pytest_plugins = ["kvorum.testing.pytest_plugin"]`` in a root conftest, or import
the fixtures into a conftest (``tests/e2e/conftest.py`` does). ``kvorum_cluster`` is a factory::

    def test_put(kvorum_cluster):
        cluster = kvorum_cluster(size=3)          # started and healthy
        rc, out, err = cluster.etcdctl("put", "k", "v")

Which binary the members run comes from ``KVORUM_CLUSTER_BINARY``: ``kvorum`` (the default:
the ``kvorum`` script next to the running Python), ``etcd`` (``/usr/bin/etcd``, to run the same
tests against the reference) or a command line. Every
cluster the factory made is stopped at teardown, pass or fail; the test is skipped when the
binary or ``/usr/bin/etcdctl`` is not installed.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Protocol

import pytest

from kvorum.testing.cluster import ETCDCTL, Cluster, binary_for

__all__ = ["ClusterFactory", "cluster_binary", "kvorum_cluster"]

BINARY_ENV = "KVORUM_CLUSTER_BINARY"
CLUSTERS_PER_TEST_MAX = 8


class ClusterFactory(Protocol):
    def __call__(
        self,
        size: int = 1,
        *,
        binary: str | Sequence[str] | None = None,
        extra_flags: Sequence[str] = (),
        env: Mapping[str, str] | None = None,
        start: bool = True,
    ) -> Cluster: ...


def cluster_binary() -> list[str]:
    """The member command selected by ``KVORUM_CLUSTER_BINARY`` (default: kvorum)."""
    return binary_for(os.environ.get(BINARY_ENV, "kvorum"))


def _require(command: Sequence[str]) -> None:
    for tool in (command[0], ETCDCTL):
        if shutil.which(tool) is None:
            pytest.skip(f"{tool} is not installed (etcd: run scripts/ensure-debian-packages)")


@pytest.fixture
def kvorum_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ClusterFactory]:
    """A factory of started clusters, each in its own temporary dir, all stopped at teardown."""
    clusters: list[Cluster] = []

    def make(
        size: int = 1,
        *,
        binary: str | Sequence[str] | None = None,
        extra_flags: Sequence[str] = (),
        env: Mapping[str, str] | None = None,
        start: bool = True,
    ) -> Cluster:
        if len(clusters) >= CLUSTERS_PER_TEST_MAX:
            raise RuntimeError(f"more than {CLUSTERS_PER_TEST_MAX} clusters in one test")
        command = cluster_binary() if binary is None else binary
        _require([command] if isinstance(command, str) else list(command))
        base: Path = tmp_path_factory.mktemp(f"cluster{size}-")
        cluster = Cluster(command, size, base_dir=base, extra_flags=extra_flags, env=env)
        clusters.append(cluster)  # registered before start: a failed start is cleaned too
        return cluster.start() if start else cluster

    try:
        yield make
    finally:
        for cluster in clusters:
            cluster.stop()
