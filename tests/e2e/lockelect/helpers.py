"""Helpers of the lock and election tests: a transcript that hides lease ids, stubs, polling,
and a background etcdctl whose output is read line by line.

Lease ids are the only thing that differs between two runs of the same script against two
fresh servers (etcd derives them from the member id and the clock); they show as decimal ids
and, in keys, as the hex suffix of ``name/<lease>``. `Transcript` replaces both by
``<lease-N>``, numbered in order of first appearance, so two transcripts compare equal exactly
when the servers answered the same keys, values, revisions and errors.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

import grpc

from kvorum.api.pb.etcdserverpb import rpc_pb2, rpc_pb2_grpc
from kvorum.api.pb.v3electionpb import v3election_pb2_grpc
from kvorum.api.pb.v3lockpb import v3lock_pb2_grpc
from kvorum.testing import Cluster

T = TypeVar("T")

RPC_TIMEOUT_S = 10.0
WAIT_S = 20.0
POLL_S = 0.05
STOP_TIMEOUT_S = 5.0
# etcd's lease ids are 63-bit: 16 hex digits at most.
_HEX_SUFFIX = re.compile(rb"/([0-9a-f]{1,16})$")


class Stubs:
    """Lock, Election, KV and Lease stubs on one member's client address."""

    def __init__(self, address: str) -> None:
        self.channel = grpc.insecure_channel(address)
        self.lock: Any = v3lock_pb2_grpc.LockStub(self.channel)  # type: ignore[no-untyped-call]
        self.election: Any = v3election_pb2_grpc.ElectionStub(self.channel)  # type: ignore[no-untyped-call]
        self.kv: Any = rpc_pb2_grpc.KVStub(self.channel)  # type: ignore[no-untyped-call]
        self.lease: Any = rpc_pb2_grpc.LeaseStub(self.channel)  # type: ignore[no-untyped-call]

    def grant(self, ttl_s: int) -> int:
        grant = self.lease.LeaseGrant(rpc_pb2.LeaseGrantRequest(TTL=ttl_s), timeout=RPC_TIMEOUT_S)
        return int(grant.ID)

    def count(self, prefix: bytes) -> int:
        """How many keys are under `prefix` now."""
        end = prefix[:-1] + bytes([prefix[-1] + 1])
        resp = self.kv.Range(
            rpc_pb2.RangeRequest(key=prefix, range_end=end, count_only=True),
            timeout=RPC_TIMEOUT_S,
        )
        return int(resp.count)

    def close(self) -> None:
        self.channel.close()


def stubs_for(cluster: Cluster, index: int = 0) -> Stubs:
    return Stubs(cluster.member(index).spec.client_address)


def wait_until(condition: Callable[[], T], what: str, timeout_s: float = WAIT_S) -> T:
    """Poll `condition` until it returns something truthy; fail after `timeout_s`."""
    deadline = time.monotonic() + timeout_s
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s}s waiting for {what}")
        time.sleep(POLL_S)


class Transcript:
    """Lines of what a server answered, with lease ids replaced by ``<lease-N>``."""

    def __init__(self) -> None:
        self.lines: list[str] = []
        self._leases: dict[int, str] = {}

    def lease(self, lease_id: int) -> str:
        if lease_id == 0:
            return "0"
        return self._leases.setdefault(lease_id, f"<lease-{len(self._leases)}>")

    def key(self, key: bytes) -> str:
        match = _HEX_SUFFIX.search(key)
        if match is None:
            return key.decode(errors="backslashreplace")
        lease_id = int(match.group(1), 16)
        head = key[: match.start(1)].decode(errors="backslashreplace")
        return head + self.lease(lease_id)

    def kv(self, kv: Any) -> str:
        return (
            f"{self.key(kv.key)}={kv.value.decode(errors='backslashreplace')!r}"
            f" create={kv.create_revision} mod={kv.mod_revision} ver={kv.version}"
            f" lease={self.lease(kv.lease)}"
        )

    def add(self, step: str, text: str) -> None:
        self.lines.append(f"{step}: {text}")

    def call(self, step: str, call: Callable[[], Any], show: Callable[[Any], str]) -> Any:
        """Run one RPC; record its answer (through `show`) or its status and details."""
        try:
            resp = call()
        except grpc.RpcError as exc:
            self.add(step, f"error {exc.code().name} {exc.details()!r}")
            return None
        self.add(step, show(resp))
        return resp

    def result(self, step: str, future: Any, show: Callable[[Any], str]) -> Any:
        """Record the outcome of an RPC started with ``.future``."""
        return self.call(step, lambda: future.result(timeout=WAIT_S), show)


class BackgroundCtl:
    """One ``etcdctl`` left running (``lock`` holding, ``elect`` campaigning or listening).

    Its stdout is read by a thread into lines; `stop` ends it by pid (the signal given, then
    SIGKILL after a bounded wait), and the fixture that made it stops it in any case.
    """

    def __init__(self, cluster: Cluster, args: Sequence[str], *, member: int = 0) -> None:
        env = {k: v for k, v in os.environ.items() if not k.startswith("ETCDCTL_")}
        env["ETCDCTL_API"] = "3"
        self.args = tuple(args)
        self._proc = subprocess.Popen(
            [cluster.etcdctl_path, f"--endpoints={cluster.member(member).client_url}", *args],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=env,
        )
        self._lines: list[str] = []
        self._stderr = b""
        self._guard = threading.Lock()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    @property
    def pid(self) -> int:
        return self._proc.pid

    def _read(self) -> None:
        assert self._proc.stdout is not None
        for raw in self._proc.stdout:
            with self._guard:
                self._lines.append(raw.decode(errors="backslashreplace").rstrip("\n"))

    def lines(self) -> list[str]:
        with self._guard:
            return list(self._lines)

    def wait_lines(self, count: int, timeout_s: float = WAIT_S) -> list[str]:
        """The first `count` lines of output, once printed."""

        def enough() -> list[str] | None:
            lines = self.lines()
            if len(lines) >= count:
                return lines[:count]
            if self._proc.poll() is not None and self._reader.is_alive() is False:
                raise AssertionError(
                    f"etcdctl {' '.join(self.args)} exited {self._proc.returncode} after "
                    f"{lines!r}; stderr: {self._read_stderr()!r}"
                )
            return None

        return wait_until(enough, f"{count} line(s) from etcdctl {' '.join(self.args)}", timeout_s)

    def running(self) -> bool:
        return self._proc.poll() is None

    def wait_exit(self, timeout_s: float = WAIT_S) -> int:
        code = self._proc.wait(timeout=timeout_s)
        self._reader.join(timeout=STOP_TIMEOUT_S)
        return code

    def _read_stderr(self) -> str:
        if self._proc.stderr is not None and self._proc.poll() is not None and not self._stderr:
            self._stderr = self._proc.stderr.read()
        return self._stderr.decode(errors="backslashreplace")

    def stderr(self) -> str:
        return self._read_stderr()

    def send_signal(self, sig: int) -> None:
        if self._proc.poll() is None:
            os.kill(self._proc.pid, sig)

    def stop(self, sig: int = signal.SIGTERM) -> None:
        if self._proc.poll() is None:
            os.kill(self._proc.pid, sig)
            try:
                self._proc.wait(timeout=STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                os.kill(self._proc.pid, signal.SIGKILL)
                self._proc.wait(timeout=STOP_TIMEOUT_S)
        self._reader.join(timeout=STOP_TIMEOUT_S)
        for stream in (self._proc.stdout, self._proc.stderr):
            if stream is not None:
                stream.close()
