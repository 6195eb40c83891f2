"""Client workers for the fault suite, recording a history in ``kvorum.check``'s format.

Each worker is a thread with its own gRPC channel per member (raw etcd v3 stubs, no client
library retrying behind our back). It loops over a small keyspace doing reads, blind writes and
compare-and-set (a Txn comparing the key's value, or its absence, then putting), one request at
a time, and records for each: invoke and completion monotonic ns, the outcome and the result.

Outcomes, as the checker reads them (``kvorum/check/history.py``):

- ``ok``: an answer arrived. A CAS whose compare failed is ``ok`` with output ``false``: etcd
  said definitely that nothing was written.
- ``fail``: the request certainly did not take effect -- gRPC never had a connection to send it
  on ("failed to connect"), or a read failed (reads change nothing, so any error is a fail).
- ``unknown``: a write whose answer never came (deadline, connection lost, etcd's own
  "request timed out" or "leader changed": the proposal may still commit later).

After a failed or unknown request an unpinned worker moves on to the next member, as etcd's
client balancer does. Values are unique (``w<process>.<n>``), so a CAS on the value is as
strong as one on the mod revision and every read names the write it saw.
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import grpc

from kvorum.api.pb.etcdserverpb import rpc_pb2, rpc_pb2_grpc

# Deadlines of one request. Long enough that only requests caught by a fault time out on a
# loaded 2-core machine; short enough that a worker moves on within a fault's hold time.
READ_TIMEOUT_S = 2.0
WRITE_TIMEOUT_S = 3.0
# Bounds on one worker's loop: requests and, after a definite failure, a short pause so that a
# worker facing a dead member does not spin.
OPS_PER_WORKER_MAX = 200_000
FAIL_BACKOFF_S = 0.05
GATE_POLL_S = 0.1
CHANNEL_OPTIONS = [
    ("grpc.initial_reconnect_backoff_ms", 50),
    ("grpc.min_reconnect_backoff_ms", 50),
    ("grpc.max_reconnect_backoff_ms", 250),
]
# gRPC details meaning the request never left this process.
_NEVER_SENT_MARKERS = ("failed to connect", "connection refused", "Connection refused")

# Operation mix: (kind, weight).
DEFAULT_MIX: tuple[tuple[str, int], ...] = (("read", 50), ("write", 25), ("cas", 25))


class History:
    """A thread-safe list of history records (dicts in ``kvorum.check``'s JSON format)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._records: list[dict[str, Any]] = []

    def add(self, record: dict[str, Any]) -> None:
        with self._lock:
            self._records.append(record)

    @property
    def records(self) -> list[dict[str, Any]]:
        with self._lock:
            return list(self._records)


def _never_sent(err: grpc.RpcError) -> bool:
    code = err.code() if hasattr(err, "code") else None
    details = (err.details() if hasattr(err, "details") else "") or ""
    return code == grpc.StatusCode.UNAVAILABLE and any(m in details for m in _NEVER_SENT_MARKERS)


def _error_text(err: grpc.RpcError) -> str:
    code = err.code() if hasattr(err, "code") else None
    details = (err.details() if hasattr(err, "details") else "") or ""
    return f"{code.name if code is not None else '?'}: {details}"


@dataclass
class Endpoints:
    """Client addresses (``host:port``) of the members, and one channel per member per worker."""

    addresses: Sequence[str]
    _channels: dict[int, Any] = field(default_factory=dict)

    def kv(self, index: int) -> Any:
        channel = self._channels.get(index)
        if channel is None:
            channel = grpc.insecure_channel(self.addresses[index], options=CHANNEL_OPTIONS)
            self._channels[index] = channel
        return rpc_pb2_grpc.KVStub(channel)  # type: ignore[no-untyped-call]

    def close(self) -> None:
        for channel in self._channels.values():
            channel.close()
        self._channels.clear()


class Worker(threading.Thread):
    """One client: requests one at a time until `stop` is set, each recorded in `history`."""

    def __init__(
        self,
        process: int | str,
        addresses: Sequence[str],
        history: History,
        stop: threading.Event,
        *,
        keys: Sequence[str],
        seed: int,
        start_member: int = 0,
        pinned: bool = False,
        serializable: bool = False,
        mix: Sequence[tuple[str, int]] = DEFAULT_MIX,
        clock: Callable[[], int] = time.monotonic_ns,
        gate: threading.Event | None = None,
        cluster_id: int | None = None,
    ) -> None:
        super().__init__(name=f"fault-worker-{process}", daemon=True)
        self.process = process
        self.endpoints = Endpoints(addresses)
        self.history = history
        self.stop_event = stop
        self.keys = list(keys)
        self.rng = random.Random(f"{seed}/{process}")
        self.member = start_member % len(addresses)
        self.pinned = pinned
        self.serializable = serializable
        self.kinds = [k for k, _ in mix]
        self.weights = [w for _, w in mix]
        self.clock = clock
        # While cleared, the worker sends nothing (a nemesis quiets the cluster with it).
        self.gate = gate
        # Every answer must come from this cluster: a member's loopback port, free while the
        # member is down, may be taken by another test's cluster in the meantime.
        self.cluster_id = cluster_id
        self.foreign_answers = 0
        self.counter = 0
        # What this worker last saw in each key: the CAS compares against it.
        self.seen: dict[str, str | None] = {}
        self.outcomes: dict[str, int] = {"ok": 0, "fail": 0, "unknown": 0}

    def run(self) -> None:
        try:
            for _ in range(OPS_PER_WORKER_MAX):
                if self.stop_event.is_set():
                    return
                if self.gate is not None and not self.gate.wait(GATE_POLL_S):
                    continue
                kind = self.rng.choices(self.kinds, self.weights)[0]
                key = self.rng.choice(self.keys)
                outcome = self.one(kind, key)
                self.outcomes[outcome] += 1
                if outcome != "ok":
                    if not self.pinned:
                        self.member = (self.member + 1) % len(self.endpoints.addresses)
                    self.stop_event.wait(FAIL_BACKOFF_S)
        finally:
            self.endpoints.close()

    def next_value(self) -> str:
        self.counter += 1
        return f"w{self.process}.{self.counter}"

    def one(self, kind: str, key: str) -> str:
        """Send one request of ``kind`` on ``key`` to the current member; record it."""
        if kind == "read":
            return self.read(key)
        if kind == "write":
            return self.write(key, self.next_value())
        return self.cas(key, self.seen.get(key), self.next_value())

    def _record(self, record: dict[str, Any]) -> None:
        record["process"] = self.process
        record["member"] = self.member
        self.history.add(record)

    def _foreign(self, response: Any, record: dict[str, Any]) -> bool:
        """True (and recorded as a failure) if another cluster answered: not our history."""
        if self.cluster_id is None or response.header.cluster_id == self.cluster_id:
            return False
        self.foreign_answers += 1
        record.update(
            complete_ns=self.clock(),
            outcome="fail",
            error=f"answered by cluster {response.header.cluster_id:x}, not ours",
        )
        self._record(record)
        return True

    def read(self, key: str) -> str:
        request = rpc_pb2.RangeRequest(key=key.encode(), serializable=self.serializable)
        invoke = self.clock()
        try:
            response = self.endpoints.kv(self.member).Range(request, timeout=READ_TIMEOUT_S)
        except grpc.RpcError as err:
            # A read changes nothing: whatever happened, it is as if it never ran.
            self._record(
                {"op": "read", "key": key, "invoke_ns": invoke, "complete_ns": self.clock(),
                 "outcome": "fail", "error": _error_text(err)}
            )  # fmt: skip
            return "fail"
        complete = self.clock()
        if self._foreign(response, {"op": "read", "key": key, "invoke_ns": invoke}):
            return "fail"
        value = response.kvs[0].value.decode() if response.kvs else None
        self.seen[key] = value
        self._record(
            {"op": "read", "key": key, "invoke_ns": invoke, "complete_ns": complete,
             "outcome": "ok", "output": value, "revision": response.header.revision}
        )  # fmt: skip
        return "ok"

    def write(self, key: str, value: str) -> str:
        request = rpc_pb2.PutRequest(key=key.encode(), value=value.encode())
        invoke = self.clock()
        try:
            response = self.endpoints.kv(self.member).Put(request, timeout=WRITE_TIMEOUT_S)
        except grpc.RpcError as err:
            outcome = "fail" if _never_sent(err) else "unknown"
            self._record(
                {"op": "write", "key": key, "value": value, "invoke_ns": invoke,
                 "complete_ns": self.clock(), "outcome": outcome, "error": _error_text(err)}
            )  # fmt: skip
            return outcome
        complete = self.clock()
        if self._foreign(
            response, {"op": "write", "key": key, "value": value, "invoke_ns": invoke}
        ):
            return "fail"
        self.seen[key] = value
        self._record(
            {"op": "write", "key": key, "value": value, "invoke_ns": invoke,
             "complete_ns": complete, "outcome": "ok", "revision": response.header.revision}
        )  # fmt: skip
        return "ok"

    def cas(self, key: str, expected: str | None, value: str) -> str:
        if expected is None:
            # Absent key: etcd's idiom is create_revision == 0.
            compare = rpc_pb2.Compare(
                key=key.encode(),
                result=rpc_pb2.Compare.EQUAL,
                target=rpc_pb2.Compare.CREATE,
                create_revision=0,
            )
        else:
            compare = rpc_pb2.Compare(
                key=key.encode(),
                result=rpc_pb2.Compare.EQUAL,
                target=rpc_pb2.Compare.VALUE,
                value=expected.encode(),
            )
        request = rpc_pb2.TxnRequest(
            compare=[compare],
            success=[
                rpc_pb2.RequestOp(
                    request_put=rpc_pb2.PutRequest(key=key.encode(), value=value.encode())
                )
            ],
            failure=[rpc_pb2.RequestOp(request_range=rpc_pb2.RangeRequest(key=key.encode()))],
        )
        invoke = self.clock()
        try:
            response = self.endpoints.kv(self.member).Txn(request, timeout=WRITE_TIMEOUT_S)
        except grpc.RpcError as err:
            outcome = "fail" if _never_sent(err) else "unknown"
            self._record(
                {"op": "cas", "key": key, "expected": expected, "value": value,
                 "invoke_ns": invoke, "complete_ns": self.clock(), "outcome": outcome,
                 "error": _error_text(err)}
            )  # fmt: skip
            return outcome
        complete = self.clock()
        record = {
            "op": "cas",
            "key": key,
            "expected": expected,
            "value": value,
            "invoke_ns": invoke,
        }
        if self._foreign(response, record):
            return "fail"
        if response.succeeded:
            self.seen[key] = value
        else:
            kvs = response.responses[0].response_range.kvs if response.responses else []
            self.seen[key] = kvs[0].value.decode() if kvs else None
        self._record(
            {"op": "cas", "key": key, "expected": expected, "value": value, "invoke_ns": invoke,
             "complete_ns": complete, "outcome": "ok", "output": bool(response.succeeded),
             "revision": response.header.revision}
        )  # fmt: skip
        return "ok"
