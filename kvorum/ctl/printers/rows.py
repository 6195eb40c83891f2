"""The rows shared by the simple and table formats (etcdctl's ``make*Table`` helpers)."""

from __future__ import annotations

from collections.abc import Sequence

from kvorum.api.pb.etcdserverpb import rpc_pb2
from kvorum.ctl.gofmt import go_bool, humanize_bytes
from kvorum.ctl.printers.records import EpHashKV, EpHealth, EpStatus

__all__ = [
    "Table",
    "endpoint_hashkv_table",
    "endpoint_health_table",
    "endpoint_status_table",
    "member_list_table",
]

Table = tuple[list[str], list[list[str]]]


def member_list_table(resp: rpc_pb2.MemberListResponse) -> Table:
    header = ["ID", "Status", "Name", "Peer Addrs", "Client Addrs", "Is Learner"]
    rows = [
        [
            f"{m.ID:x}",
            "started" if m.name else "unstarted",
            m.name,
            ",".join(m.peerURLs),
            ",".join(m.clientURLs),
            go_bool(m.isLearner),
        ]
        for m in resp.members
    ]
    return header, rows


def endpoint_status_table(statuses: Sequence[EpStatus]) -> Table:
    header = [
        "endpoint", "ID", "version", "db size", "is leader", "is learner", "raft term",
        "raft index", "raft applied index", "errors",
    ]  # fmt: skip
    rows = []
    for st in statuses:
        r = st.response
        rows.append(
            [
                st.endpoint,
                f"{r.header.member_id:x}",
                r.version,
                humanize_bytes(r.dbSize),
                go_bool(r.leader == r.header.member_id),
                go_bool(r.isLearner),
                str(r.raftTerm),
                str(r.raftIndex),
                str(r.raftAppliedIndex),
                ", ".join(r.errors),
            ]
        )
    return header, rows


def endpoint_hashkv_table(hashes: Sequence[EpHashKV]) -> Table:
    return ["endpoint", "hash"], [[h.endpoint, str(h.response.hash)] for h in hashes]


def endpoint_health_table(healths: Sequence[EpHealth]) -> Table:
    header = ["endpoint", "health", "took", "error"]
    return header, [[h.endpoint, go_bool(h.health), h.took, h.error] for h in healths]
