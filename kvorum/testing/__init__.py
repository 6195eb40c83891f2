"""Test support for kvorum: real-process clusters and etcdctl differential scenarios.

``Cluster`` launches members of any etcd-flag-compatible binary (``/usr/bin/etcd`` or kvorum's
``kvorum``) on loopback ports; ``kvorum.testing.pytest_plugin`` offers it as the
``kvorum_cluster`` fixture; ``kvorum.testing.scenario``, ``normalise`` and ``differential`` run
etcdctl scenarios against two clusters and compare what etcdctl printed.
"""

from kvorum.testing.cluster import (
    CLUSTER_TOKEN,
    ETCD,
    ETCDCTL,
    Cluster,
    ClusterStartError,
    ClusterTLS,
    CtlResult,
    Member,
    MemberSpec,
    binary_for,
)
from kvorum.testing.ports import free_ports

__all__ = [
    "CLUSTER_TOKEN",
    "ETCD",
    "ETCDCTL",
    "Cluster",
    "ClusterStartError",
    "ClusterTLS",
    "CtlResult",
    "Member",
    "MemberSpec",
    "binary_for",
    "free_ports",
]
