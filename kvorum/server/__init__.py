"""The member: the raft shell (Ready loop), propose-and-wait, ReadIndex reads.

``raftnode`` drives the pure raft core; ``raftstorage`` keeps its log in memory and on
disk (WAL + snapshot files); ``wait`` and ``readindex`` wake requests; ``envelope`` is
the request id around each proposal; ``errors`` is the one table of etcd's error texts.
"""

from kvorum.server.envelope import (
    Envelope,
    RequestIdGenerator,
    decode_conf_change,
    decode_envelope,
    encode_envelope,
)
from kvorum.server.raftnode import (
    EARLY_SEND_TYPES,
    Applier,
    LeaderListener,
    RaftNode,
    RaftNodeConfig,
    Transport,
)
from kvorum.server.raftstorage import RaftStorage, StorageOptions
from kvorum.server.readindex import ReadIndexBatcher
from kvorum.server.wait import Wait

__all__ = [
    "EARLY_SEND_TYPES",
    "Applier",
    "Envelope",
    "LeaderListener",
    "RaftNode",
    "RaftNodeConfig",
    "RaftStorage",
    "ReadIndexBatcher",
    "RequestIdGenerator",
    "StorageOptions",
    "Transport",
    "Wait",
    "decode_conf_change",
    "decode_envelope",
    "encode_envelope",
]
