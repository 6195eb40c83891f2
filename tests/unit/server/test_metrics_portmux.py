"""The port-multiplexer experiment: gRPC and HTTP/1.1 on one port, told apart by the HTTP/2
preface, each spliced to its own internal listener."""

from __future__ import annotations

import asyncio
import json
import urllib.request
from typing import Any

import grpc

from kvorum.api.pb.etcdserverpb import rpc_pb2, rpc_pb2_grpc
from kvorum.server.httpserver import HttpEndpoints
from kvorum.server.metrics import ServerMetrics
from kvorum.server.portmux import HTTP2_PREFACE, PortMux, is_http2
from kvorum.testing.ports import LOOPBACK, free_ports


def test_preface_detection() -> None:
    assert is_http2(HTTP2_PREFACE)
    assert is_http2(HTTP2_PREFACE[:5])  # a short first read still decides
    assert not is_http2(b"GET /health HTTP/1.1\r\n")
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


def test_grpc_and_http_share_one_port() -> None:
    async def scenario() -> None:
        http_port = free_ports(1)[0]
        endpoints = HttpEndpoints(ServerMetrics(), _Health())
        await endpoints.serve([f"http://{LOOPBACK}:{http_port}"])
        server = grpc.aio.server()
        rpc_pb2_grpc.add_KVServicer_to_server(_KV(), server)  # type: ignore[no-untyped-call]
        grpc_port = server.add_insecure_port(f"{LOOPBACK}:0")
        await server.start()
        mux = PortMux((LOOPBACK, 0), (LOOPBACK, grpc_port), (LOOPBACK, http_port)).start()
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
        finally:
            mux.close()
            await server.stop(None)
            await endpoints.close()

    asyncio.run(scenario())
