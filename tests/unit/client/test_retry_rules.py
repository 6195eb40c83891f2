"""The failover and retry rules of ``Pool.unary``, against in-process gRPC KV servers.

Three endpoints: a closed port (connection refused: nothing is ever sent), a server that
receives every request and answers UNAVAILABLE ("etcdserver: leader changed" -- the request
reached it), and a healthy server. Each server records the requests it received, so the tests
see exactly where a request went and how often.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator, Callable, Coroutine
from contextlib import asynccontextmanager
from typing import Any

import grpc
import grpc.aio
import pytest

from kvorum.api.pb.etcdserverpb import rpc_pb2, rpc_pb2_grpc
from kvorum.client import AsyncClient, DeadlineExceededError, LeaderChangedError, Unavailable

LEADER_CHANGED = "etcdserver: leader changed"


class _KV(rpc_pb2_grpc.KVServicer):
    def __init__(self, fail: bool, hang: bool = False) -> None:
        self.fail = fail
        self.hang = hang
        self.received: list[str] = []

    async def _answer(self, kind: str, context: Any) -> None:
        self.received.append(kind)
        if self.hang:
            await asyncio.sleep(60)
        if self.fail:
            await context.abort(grpc.StatusCode.UNAVAILABLE, LEADER_CHANGED)

    async def Range(self, request: Any, context: Any) -> rpc_pb2.RangeResponse:
        await self._answer("range", context)
        return rpc_pb2.RangeResponse(count=1)

    async def Put(self, request: Any, context: Any) -> rpc_pb2.PutResponse:
        await self._answer("put", context)
        return rpc_pb2.PutResponse()


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


@asynccontextmanager
async def _servers() -> AsyncIterator[tuple[list[str], _KV, _KV]]:
    failing, healthy = _KV(fail=True), _KV(fail=False)
    servers = []
    urls = [f"http://127.0.0.1:{_closed_port()}"]
    for servicer in (failing, healthy):
        server = grpc.aio.server()
        rpc_pb2_grpc.add_KVServicer_to_server(servicer, server)  # type: ignore[no-untyped-call]
        port = server.add_insecure_port("127.0.0.1:0")
        await server.start()
        servers.append(server)
        urls.append(f"http://127.0.0.1:{port}")
    try:
        yield urls, failing, healthy
    finally:
        for server in servers:
            await server.stop(0)


def _run(body: Callable[[], Coroutine[Any, Any, None]]) -> None:
    asyncio.run(asyncio.wait_for(body(), 20.0))


def test_read_moves_past_unreachable_and_unavailable_endpoints() -> None:
    async def body() -> None:
        async with _servers() as (urls, failing, healthy), AsyncClient(urls) as c:
            assert (await c.get("k")).count == 1
            assert (failing.received, healthy.received) == (["range"], ["range"])
            assert c.current_endpoint == urls[2]

    _run(body)


def test_write_that_reached_a_server_is_not_repeated() -> None:
    async def body() -> None:
        async with _servers() as (urls, failing, healthy), AsyncClient(urls[1:]) as c:
            with pytest.raises(LeaderChangedError):
                await c.put("k", b"v")
            assert (failing.received, healthy.received) == (["put"], [])

    _run(body)


def test_write_goes_on_when_the_first_endpoint_refused_the_connection() -> None:
    async def body() -> None:
        async with _servers() as (urls, _failing, healthy), AsyncClient([urls[0], urls[2]]) as c:
            await c.put("k", b"v")
            assert healthy.received == ["put"]
            assert c.current_endpoint == urls[2]

    _run(body)


def test_deadline_bounds_retries_when_no_endpoint_answers() -> None:
    async def body() -> None:
        async with (
            _servers() as (urls, failing, _healthy),
            AsyncClient(urls[:2], timeout_s=0.5) as c,
        ):
            loop = asyncio.get_running_loop()
            started = loop.time()
            with pytest.raises(Unavailable):
                await c.get("k")
            assert loop.time() - started < 1.5
            assert len(failing.received) >= 2  # the read was repeated until the deadline

    _run(body)


def test_read_leaves_a_hung_member_but_a_write_does_not() -> None:
    async def body() -> None:
        async with _servers() as (urls, failing, healthy):
            failing.hang = True
            async with AsyncClient(urls[1:], timeout_s=3.0) as c:
                loop = asyncio.get_running_loop()
                started = loop.time()
                assert (await c.get("k")).count == 1
                # Half the deadline on the hung member, then the healthy one answered.
                assert 1.0 <= loop.time() - started < 2.5
                assert c.current_endpoint == urls[2]
            async with AsyncClient(urls[1:], timeout_s=1.0) as c:
                with pytest.raises(DeadlineExceededError):
                    await c.put("k", b"v")
            assert (failing.received, healthy.received) == (["range", "put"], ["range"])

    _run(body)
