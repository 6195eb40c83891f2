"""The client port's multiplexer: gRPC and HTTP/1.1 on one port, told apart by the HTTP/2
preface; gRPC spliced to the gRPC server's internal listener, HTTP adopted by the endpoints."""

from __future__ import annotations

import asyncio
import json
import socket
import time
import urllib.request
from typing import Any

import grpc
import pytest

from kvorum.api.pb.etcdserverpb import rpc_pb2, rpc_pb2_grpc
from kvorum.server.httpserver import HttpEndpoints
from kvorum.server.metrics import ServerMetrics
from kvorum.server.portmux import (
    HTTP2_PREFACE,
    PEEK_BYTES,
    MuxProcess,
    PortMux,
    is_http2,
    listen_socket,
)
from kvorum.testing.ports import LOOPBACK


def test_preface_detection() -> None:
    assert is_http2(HTTP2_PREFACE)
    assert is_http2(HTTP2_PREFACE[:PEEK_BYTES])
    for method in (b"GET ", b"POST", b"PUT ", b"HEAD", b"PATC"):
        assert not is_http2(method[:PEEK_BYTES])
    assert not is_http2(b"")


class _Health:
    def alarms(self) -> list[str]:
        return []

    def has_leader(self) -> bool:
        return True

    async def read(self, serializable: bool, timeout_s: float) -> str | None:
        return None

    def versions(self) -> tuple[str, str]:
        return "3.4.23", "3.4.0"


class _KV(rpc_pb2_grpc.KVServicer):  # type: ignore[misc]
    async def Put(self, request: Any, context: Any) -> Any:
        return rpc_pb2.PutResponse(prev_kv=None)


@pytest.mark.parametrize("where", ["child process", "in process"])
def test_grpc_and_http_share_one_port(where: str) -> None:
    async def scenario() -> None:
        endpoints = HttpEndpoints(ServerMetrics(), _Health())
        server = grpc.aio.server()
        rpc_pb2_grpc.add_KVServicer_to_server(_KV(), server)  # type: ignore[no-untyped-call]
        grpc_port = server.add_insecure_port(f"{LOOPBACK}:0")
        await server.start()
        listener = listen_socket(LOOPBACK, 0)
        mux: MuxProcess | PortMux
        if where == "child process":  # as the member runs it
            mux = MuxProcess(listener, (LOOPBACK, grpc_port), endpoints.adopt)
        else:
            handoff = endpoints.handoff(asyncio.get_running_loop())
            mux = PortMux(listener, (LOOPBACK, grpc_port), handoff).start()
        public = f"{LOOPBACK}:{mux.address[1]}"
        try:
            async with grpc.aio.insecure_channel(public) as channel:
                kv = rpc_pb2_grpc.KVStub(channel)  # type: ignore[no-untyped-call]
                for _ in range(3):
                    await kv.Put(rpc_pb2.PutRequest(key=b"k", value=b"v" * 100_000), timeout=5)

            def fetch(path: str) -> bytes:
                with urllib.request.urlopen(f"http://{public}{path}", timeout=5) as resp:
                    body: bytes = resp.read()
                    return body

            assert await asyncio.to_thread(fetch, "/health") == b'{"health":"true"}'
            version = json.loads(await asyncio.to_thread(fetch, "/version"))
            assert version == {"etcdserver": "3.4.23", "etcdcluster": "3.4.0"}

            def dribble() -> bytes:
                # "P" alone could start "PRI" (HTTP/2) or "POST": the mux waits for more.
                with socket.create_connection((LOOPBACK, mux.address[1]), timeout=5) as s:
                    s.sendall(b"P")
                    time.sleep(0.2)
                    s.sendall(b"OST /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
                    return b"".join(iter(lambda: s.recv(65536), b""))

            assert (await asyncio.to_thread(dribble)).startswith(b"HTTP/1.1 200 OK\r\n")
            # Still gRPC after the HTTP connections (each connection is told apart alone).
            async with grpc.aio.insecure_channel(public) as channel:
                kv = rpc_pb2_grpc.KVStub(channel)  # type: ignore[no-untyped-call]
                await kv.Put(rpc_pb2.PutRequest(key=b"k", value=b"v"), timeout=5)
        finally:
            if isinstance(mux, MuxProcess):
                await mux.close()
                assert mux.failure is None
            else:
                mux.close()
            await server.stop(None)
            await endpoints.close()

    asyncio.run(scenario())
