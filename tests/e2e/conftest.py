"""Fixtures shared by the end-to-end tests (real processes, the real etcdctl).

``kvorum_cluster`` (from ``kvorum.testing.pytest_plugin``) makes started clusters of the binary
chosen by ``KVORUM_CLUSTER_BINARY`` and stops them by pid at teardown. ``etcd_installed`` skips
a test when the reference etcd or etcdctl is missing.
"""

from __future__ import annotations

import shutil

import pytest

from kvorum.testing import ETCD, ETCDCTL
from kvorum.testing.pytest_plugin import kvorum_cluster

__all__ = ["etcd_installed", "kvorum_cluster"]


@pytest.fixture(scope="session")
def etcd_installed() -> None:
    for tool in (ETCD, ETCDCTL):
        if shutil.which(tool) is None:
            pytest.skip(f"{tool} is not installed (run scripts/ensure-debian-packages)")
