"""Helpers of the watch e2e tests: a background `etcdctl watch`, and a gRPC Watch stream
driven one request at a time."""

from __future__ import annotations

import os
import queue
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import grpc

from kvorum.api.pb.etcdserverpb import rpc_pb2, rpc_pb2_grpc
from kvorum.testing import ETCDCTL, Cluster

WAIT_S = 15.0


class CtlWatch:
    """`etcdctl watch ...` running in the background against one member, its output read
    line by line (etcdctl watch never ends by itself)."""

    def __init__(self, cluster: Cluster, *args: str, member: int = 0) -> None:
        env = {k: v for k, v in os.environ.items() if not k.startswith("ETCDCTL_")}
        env["ETCDCTL_API"] = "3"
        url = cluster.member(member).client_url
        self._proc = subprocess.Popen(
            [ETCDCTL, f"--endpoints={url}", "watch", *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=env,
        )
        self._lines: queue.Queue[str | None] = queue.Queue()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self._proc.stdout is not None
        for raw in self._proc.stdout:
            self._lines.put(raw.decode("utf-8", errors="backslashreplace").rstrip("\n"))
        self._lines.put(None)

    def until(self, last_line: str, timeout_s: float = WAIT_S) -> list[str]:
        """Every line printed up to and including the first `last_line`."""
        out: list[str] = []
        deadline = time.monotonic() + timeout_s
        while True:
            try:
                line = self._lines.get(timeout=max(deadline - time.monotonic(), 0.01))
            except queue.Empty:
                raise AssertionError(f"no {last_line!r} line in time; got {out}") from None
            if line is None:
                raise AssertionError(f"etcdctl watch ended early: {out}; {self._stderr()}")
            out.append(line)
            if line == last_line:
                return out

    def _stderr(self) -> str:
        self.stop()
        assert self._proc.stderr is not None
        return self._proc.stderr.read().decode("utf-8", errors="backslashreplace")

    def stop(self) -> None:
        if self._proc.poll() is None:
            self._proc.terminate()
            try:
                self._proc.wait(5)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait()


class GrpcWatch:
    """One Watch RPC on a member: send requests, take responses with a deadline."""

    def __init__(self, address: str) -> None:
        self._channel = grpc.insecure_channel(address)
        stub: Any = rpc_pb2_grpc.WatchStub(self._channel)  # type: ignore[no-untyped-call]
        self._requests: queue.Queue[rpc_pb2.WatchRequest | None] = queue.Queue()
        self._responses: queue.Queue[rpc_pb2.WatchResponse | Exception] = queue.Queue()
        self._call = stub.Watch(self._request_iter())
        threading.Thread(target=self._read, daemon=True).start()

    def _request_iter(self) -> Iterator[rpc_pb2.WatchRequest]:
        while (request := self._requests.get()) is not None:
            yield request

    def _read(self) -> None:
        try:
            for response in self._call:
                self._responses.put(response)
        except Exception as exc:  # the RPC ended: told to whoever waits
            self._responses.put(exc)

    def send(self, request: rpc_pb2.WatchRequest) -> None:
        self._requests.put(request)

    def create(self, key: bytes, **fields: Any) -> None:
        self.send(
            rpc_pb2.WatchRequest(create_request=rpc_pb2.WatchCreateRequest(key=key, **fields))
        )

    def cancel(self, watch_id: int) -> None:
        self.send(
            rpc_pb2.WatchRequest(cancel_request=rpc_pb2.WatchCancelRequest(watch_id=watch_id))
        )

    def take(self, timeout_s: float = WAIT_S) -> rpc_pb2.WatchResponse:
        item = self._responses.get(timeout=timeout_s)
        if isinstance(item, Exception):
            raise AssertionError(f"the Watch RPC ended: {item}")
        return item

    def take_until(
        self, done: Callable[[list[rpc_pb2.WatchResponse]], bool], timeout_s: float = WAIT_S
    ) -> list[rpc_pb2.WatchResponse]:
        got: list[rpc_pb2.WatchResponse] = []
        deadline = time.monotonic() + timeout_s
        while not done(got):
            remaining_s = deadline - time.monotonic()
            try:
                got.append(self.take(max(remaining_s, 0.01)))
            except queue.Empty:
                raise AssertionError(f"timed out; got {got}") from None
        return got

    def close(self) -> None:
        self._call.cancel()
        self._requests.put(None)
        self._channel.close()
