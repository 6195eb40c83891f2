"""Shared pieces of the failure tests: the binary under test, status polling, store checks.

Every scenario runs twice with the same assertions: against the reference etcd 3.4 (which
proves the test itself right) and against kvorum. Observations go through the real etcdctl
(``endpoint status -w json``, ``get --consistency=s``, ``endpoint hashkv``) so that what is
checked is what an operator would see.
"""

from __future__ import annotations

import json
import shutil
import time
from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass

import pytest

from kvorum.api.pb.etcdserverpb import rpc_pb2
from kvorum.testing import ETCDCTL, Cluster, binary_for
from tests.e2e.member.helpers import POLL_S

# The bound for kill -9 of the leader at default timeouts (heartbeat 100 ms, election
# 1000 ms): a follower waits one to two election timeouts, then pre-vote and vote take a round.
NEW_LEADER_WITHIN_S = 3.0
# One etcdctl status round on live members must answer quickly; a paused or dead member is
# never among the endpoints asked.
STATUS_COMMAND_TIMEOUT = "--command-timeout=2s"
PUT_RPC_TIMEOUT_S = 5.0


def member_command(target: str) -> list[str]:
    """The member command for ``etcd`` or ``kvorum``; skip when it or etcdctl is missing."""
    command = binary_for(target)
    for tool in (command[0], ETCDCTL):
        if shutil.which(tool) is None:
            pytest.skip(f"{tool} is not installed")
    return command


@dataclass(frozen=True, slots=True)
class EndpointStatus:
    """The fields of one ``endpoint status -w json`` entry that the failure tests read."""

    member_id: int
    leader_id: int
    raft_term: int
    revision: int


def endpoint_statuses(c: Cluster, indices: Sequence[int]) -> list[EndpointStatus] | None:
    """``endpoint status -w json`` of the given members, in order; None if any did not answer."""
    rc, out, _ = c.etcdctl(
        "endpoint", "status", "-w", "json", STATUS_COMMAND_TIMEOUT, endpoint=list(indices)
    )
    if rc != 0:
        return None
    entries = json.loads(out)
    if len(entries) != len(indices):
        return None
    # etcdctl's JSON leaves out zero-valued fields: no "leader" key means no leader known.
    return [
        EndpointStatus(
            member_id=int(e["Status"]["header"]["member_id"]),
            leader_id=int(e["Status"].get("leader", 0)),
            raft_term=int(e["Status"].get("raftTerm", 0)),
            revision=int(e["Status"]["header"].get("revision", 0)),
        )
        for e in entries
    ]


def member_ids(c: Cluster) -> list[int]:
    """Member id of every member, by index (all must answer)."""
    statuses = endpoint_statuses(c, range(c.size))
    assert statuses is not None, "every member must answer endpoint status"
    return [s.member_id for s in statuses]


def agreed_leader(c: Cluster, indices: Sequence[int], not_id: int = 0) -> int | None:
    """Index of the leader once every member in ``indices`` names the same one among them.

    ``not_id`` excludes a member id: a follower still names a dead leader until its election
    timeout fires, so "agree on someone other than the old leader" is the sign of a new term.
    """
    statuses = endpoint_statuses(c, indices)
    if statuses is None:
        return None
    leaders = {s.leader_id for s in statuses}
    if len(leaders) != 1:
        return None
    (leader_id,) = leaders
    by_id = {s.member_id: i for s, i in zip(statuses, indices, strict=True)}
    if leader_id == not_id or leader_id not in by_id:
        return None
    return by_id[leader_id]


def wait_agreed_leader(c: Cluster, indices: Sequence[int], not_id: int, within_s: float) -> int:
    """Poll ``agreed_leader`` for ``within_s``; fail with every member's log tail if none."""
    deadline = time.monotonic() + within_s
    while True:
        leader = agreed_leader(c, indices, not_id)
        if leader is not None:
            return leader
        if time.monotonic() > deadline:
            logs = "\n".join(f"--- {m.name}\n{m.log_tail(15)}" for m in c.members)
            pytest.fail(f"members {list(indices)} agreed on no new leader in {within_s} s\n{logs}")
        time.sleep(POLL_S)


def grpc_put_all(c: Cluster, items: Iterable[tuple[str, str]], via: Sequence[int]) -> None:
    """Put each item through the members in ``via`` in turn; each must be acknowledged."""
    for n, (key, value) in enumerate(items):
        stub = c.member(via[n % len(via)]).kv_stub()
        request = rpc_pb2.PutRequest(key=key.encode(), value=value.encode())
        stub.Put(request, timeout=PUT_RPC_TIMEOUT_S)


def local_kvs(c: Cluster, index: int, prefix: str) -> dict[str, str] | None:
    """Keys and values under ``prefix`` as member ``index`` alone sees them (serializable)."""
    rc, out, _ = c.etcdctl(
        "get", prefix, "--prefix", "--consistency=s", STATUS_COMMAND_TIMEOUT, endpoint=index
    )
    if rc != 0:
        return None
    lines = out.splitlines()
    # Simple output alternates key and value lines; our keys and values hold no newline.
    return dict(zip(lines[0::2], lines[1::2], strict=True))


def holds_all(c: Cluster, index: int, prefix: str, acked: dict[str, str]) -> bool:
    """Member ``index`` serves every acknowledged key under ``prefix`` with its value."""
    kvs = local_kvs(c, index, prefix)
    return kvs is not None and all(kvs.get(k) == v for k, v in acked.items())


def cluster_hashes(c: Cluster) -> dict[str, str] | None:
    """``endpoint hashkv --cluster``: hash per endpoint, once all ``c.size`` agree, else None."""
    rc, out, _ = c.etcdctl("endpoint", "hashkv", "--cluster", STATUS_COMMAND_TIMEOUT)
    if rc != 0:
        return None
    hashes = dict(line.split(", ") for line in out.splitlines() if line)
    if len(hashes) != c.size or len(set(hashes.values())) != 1:
        return None
    return hashes


def last_error_line(stderr: str) -> str:
    """The ``Error: ...`` line etcdctl ends a failed command with (its retry logs precede it)."""
    errors = [line for line in stderr.splitlines() if line.startswith("Error: ")]
    assert errors, f"etcdctl printed no Error line:\n{stderr}"
    return errors[-1]


def others(indices: Collection[int], size: int) -> list[int]:
    """Member indices below ``size`` not in ``indices``."""
    return [i for i in range(size) if i not in indices]
