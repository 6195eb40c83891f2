"""The HTTP endpoints over a scripted member: /health's etcd 3.4 rules, /livez and /readyz as
etcd 3.5 words them, /version, and the HTTP/1.1 handling over a real socket."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Sequence

import pytest

from kvorum.server.httpserver import HttpEndpoints, Response, parse_listen_url
from kvorum.server.metrics import ServerMetrics
from kvorum.testing.ports import LOOPBACK, free_ports


class FakeMember:
    """A HealthSource whose answers the test sets."""

    def __init__(self) -> None:
        self.raised: list[str] = []
        self.leader = True
        self.linearizable_error: str | None = None
        self.reads: list[bool] = []

    def alarms(self) -> Sequence[str]:
        return self.raised

    def has_leader(self) -> bool:
        return self.leader

    async def read(self, serializable: bool, timeout_s: float) -> str | None:
        self.reads.append(serializable)
        return None if serializable else self.linearizable_error

    def versions(self) -> tuple[str, str]:
        return "3.4.23", "3.4.0"


def get(endpoints: HttpEndpoints, target: str, method: str = "GET") -> Response:
    return asyncio.run(endpoints.handle(method, target))


@pytest.fixture
def member() -> FakeMember:
    return FakeMember()


@pytest.fixture
def endpoints(member: FakeMember) -> HttpEndpoints:
    return HttpEndpoints(ServerMetrics(), member)


def test_health_true_reads_linearizably(endpoints: HttpEndpoints, member: FakeMember) -> None:
    r = get(endpoints, "/health")
    assert (r.status, r.body) == (200, b'{"health":"true"}')
    assert member.reads == [False]


@pytest.mark.parametrize(
    ("setup", "target"),
    [
        (lambda m: m.raised.append("NOSPACE"), "/health"),
        (lambda m: setattr(m, "leader", False), "/health"),
        (lambda m: setattr(m, "linearizable_error", "etcdserver: request timed out"), "/health"),
        (lambda m: m.raised.append("CORRUPT"), "/health?exclude=NOSPACE"),
    ],
)
def test_health_false_as_etcd_34_words_it(
    endpoints: HttpEndpoints, member: FakeMember, setup: object, target: str
) -> None:
    setup(member)  # type: ignore[operator]
    r = get(endpoints, target)
    assert (r.status, r.body) == (503, b'{"health":"false"}\n')
    assert ("X-Content-Type-Options", "nosniff") in r.headers


def test_health_exclude_and_serializable(endpoints: HttpEndpoints, member: FakeMember) -> None:
    member.raised.append("NOSPACE")
    assert get(endpoints, "/health?exclude=NOSPACE").status == 200
    member.raised.clear()
    member.leader = False
    member.linearizable_error = "no leader"
    r = get(endpoints, "/health?serializable=true")
    assert (r.status, r.body) == (200, b'{"health":"true"}')
    assert member.reads[-1] is True


def test_health_counts_into_etcds_counters(endpoints: HttpEndpoints, member: FakeMember) -> None:
    get(endpoints, "/health")
    member.leader = False
    get(endpoints, "/health")
    get(endpoints, "/health")
    page = get(endpoints, "/metrics")
    assert page.content_type.startswith("text/plain; version=0.0.4")
    assert b"etcd_server_health_success 1.0" in page.body
    assert b"etcd_server_health_failures 2.0" in page.body


def test_readyz_and_livez(endpoints: HttpEndpoints, member: FakeMember) -> None:
    assert get(endpoints, "/readyz").body == b"ok\n"
    assert get(endpoints, "/livez?verbose").body == b"[+]serializable_read ok\nok\n"
    member.linearizable_error = "etcdserver: request timed out"
    r = get(endpoints, "/readyz")
    assert r.status == 503
    assert r.body == (
        b"[+]data_corruption ok\n[+]serializable_read ok\n"
        b"[-]linearizable_read failed: etcdserver: request timed out\nreadyz check failed\n"
    )
    excluded = get(endpoints, "/readyz?exclude=linearizable_read&verbose")
    assert excluded.status == 200
    assert b"[+]linearizable_read excluded: ok\n" in excluded.body
    assert get(endpoints, "/readyz/serializable_read").status == 200
    assert get(endpoints, "/readyz/linearizable_read").status == 503
    member.raised.append("CORRUPT")
    corrupt = get(endpoints, "/readyz/data_corruption")
    assert (
        corrupt.body
        == b"[-]data_corruption failed: alarm activated: CORRUPT\nreadyz check failed\n"
    )
    assert get(endpoints, "/livez").status == 200


def test_version_methods_and_unknown_paths(endpoints: HttpEndpoints) -> None:
    version = get(endpoints, "/version")
    assert json.loads(version.body) == {"etcdserver": "3.4.23", "etcdcluster": "3.4.0"}
    assert version.content_type == "application/json"
    refused = get(endpoints, "/health", method="POST")
    assert (refused.status, refused.body) == (405, b"Method Not Allowed\n")
    assert ("Allow", "GET") in refused.headers
    assert get(endpoints, "/metrics", method="POST").status == 200  # promhttp takes any
    assert (get(endpoints, "/nope").status, get(endpoints, "/nope").body) == (
        404,
        b"404 page not found\n",
    )
    assert get(endpoints, "/livez/nope").status == 404


def test_listen_urls() -> None:
    assert parse_listen_url("http://127.0.0.1:2381") == ("127.0.0.1", 2381)
    for bad in ("https://127.0.0.1:2381", "unix://x", "http://127.0.0.1"):
        with pytest.raises(ValueError):
            parse_listen_url(bad)


async def _exchange(port: int, data: bytes) -> bytes:
    reader, writer = await asyncio.open_connection(LOOPBACK, port)
    writer.write(data)
    await writer.drain()
    try:
        async with asyncio.timeout(5):
            return await reader.read(-1)  # until the server closes
    finally:
        writer.close()


def test_over_a_socket_keep_alive_head_and_bad_requests(member: FakeMember) -> None:
    async def scenario() -> None:
        endpoints = HttpEndpoints(ServerMetrics(), member)
        port = free_ports(1)[0]
        await endpoints.serve([f"http://{LOOPBACK}:{port}"])
        try:
            # Two requests on one connection, the second asking to close it.
            two = await _exchange(
                port,
                b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n"
                b"HEAD /version HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
            )
            first, _, second = two.partition(b'{"health":"true"}')
            assert first.startswith(b"HTTP/1.1 200 OK\r\n")
            assert b"Content-Length: 17\r\n" in first
            assert second.startswith(b"HTTP/1.1 200 OK\r\n")
            assert b"Connection: close" in second
            assert second.endswith(b"\r\n\r\n")  # HEAD: headers only
            bad = await _exchange(port, b"NONSENSE\r\n\r\n")
            assert bad.startswith(b"HTTP/1.1 400 Bad Request\r\n")
            big = await _exchange(port, b"POST /metrics HTTP/1.1\r\nContent-Length: 999999\r\n\r\n")
            assert big.startswith(b"HTTP/1.1 413 ")
        finally:
            await endpoints.close()

    asyncio.run(scenario())


def test_gateway_http_statuses_are_grpc_gateways() -> None:
    # grpc-gateway v1's status table, where etcd clients branch on it.
    import grpc

    from kvorum.server.gateway import http_status

    assert http_status(grpc.StatusCode.OUT_OF_RANGE) == 400
    assert http_status(grpc.StatusCode.NOT_FOUND) == 404
    assert http_status(grpc.StatusCode.FAILED_PRECONDITION) == 400
    assert http_status(grpc.StatusCode.UNAVAILABLE) == 503


def test_without_a_gateway_v3_paths_are_not_found(endpoints: HttpEndpoints) -> None:
    assert get(endpoints, "/v3/kv/range", method="POST").status == 404


def test_gateway_streams_and_aliases_as_etcd_serves_them() -> None:
    import grpc

    from kvorum.api.pb.etcdserverpb import rpc_pb2
    from kvorum.server.gateway import (
        Gateway,
        GatewayReply,
        _parse_messages,
        _stream_error,
        canonical_path,
    )

    assert canonical_path("/v3beta/kv/range") == "/v3/kv/range"
    assert canonical_path("/v3alpha/kv/range") == "/v3alpha/kv/range"  # gone in etcd 3.4
    gateway = Gateway(None)
    assert gateway.serves("/v3beta/watch") and gateway.streams("/v3beta/watch")
    assert gateway.serves("/v3/kv/put") and not gateway.streams("/v3/kv/put")
    assert not gateway.serves("/v3alpha/kv/put")
    # Several JSON messages in one body, with or without whitespace between them.
    messages = _parse_messages('{"ID":"5"}{"ID": 6}\n {"ID":7}', rpc_pb2.LeaseKeepAliveRequest, 10)
    assert [m.ID for m in messages] == [5, 6, 7]
    assert len(_parse_messages('{"ID":1}{"ID":2}', rpc_pb2.LeaseKeepAliveRequest, 1)) == 1
    # grpc-gateway v1's stream error chunk, as etcd sends it (no newline after it).
    chunk = _stream_error(grpc.StatusCode.UNKNOWN, "auth: user name is empty")
    assert json.loads(chunk) == {
        "error": {
            "grpc_code": 2,
            "http_code": 500,
            "message": "auth: user name is empty",
            "http_status": "Internal Server Error",
        }
    }

    async def scenario() -> None:
        # A body that is not JSON: 500 with code 2 before any call, as etcd's gateway.
        bad = await gateway.open_stream("/v3/watch", b"garbage")
        assert isinstance(bad, GatewayReply) and bad.status == 500
        assert json.loads(bad.body)["code"] == 2
        # Before the gRPC listener is bound: unavailable, never a hang.
        assert (await gateway.call("/v3/kv/range", b'{"key":"Zm9v"}')).status == 503
        not_yet = await gateway.open_stream("/v3/lease/keepalive", b'{"ID":1}')
        assert isinstance(not_yet, GatewayReply) and not_yet.status == 503
        await gateway.close()

    asyncio.run(scenario())


def test_a_stream_is_chunked_and_cancelled_when_the_client_leaves() -> None:
    from collections.abc import AsyncIterator

    from kvorum.server.gateway import Gateway, GatewayReply, GatewayStream

    cancelled = asyncio.Event()

    async def forever() -> AsyncIterator[bytes]:
        yield b'{"result":{"created":true}}\n'
        yield b'{"result":{"events":[]}}\n'
        await asyncio.Event().wait()  # a watch with nothing more to say
        yield b""  # never reached

    class OneStream(Gateway):
        async def open_stream(
            self, path: str, body: bytes, token: str | None = None
        ) -> GatewayReply | GatewayStream:
            assert (path, body, token) == ("/v3beta/watch", b"{}", "tok")
            return GatewayStream(200, forever(), cancelled.set)

    async def scenario() -> None:
        port = free_ports(1)[0]
        endpoints = HttpEndpoints(ServerMetrics(), FakeMember(), gateway=OneStream(None))
        await endpoints.serve([f"http://{LOOPBACK}:{port}"])
        try:
            reader, writer = await asyncio.open_connection(LOOPBACK, port)
            writer.write(
                b"POST /v3beta/watch HTTP/1.1\r\nHost: x\r\nAuthorization: tok\r\n"
                b"Content-Length: 2\r\n\r\n{}"
            )
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
            assert head.startswith(b"HTTP/1.1 200 OK\r\n")
            assert b"Transfer-Encoding: chunked\r\n" in head
            assert b"Grpc-Metadata-Content-Type: application/grpc\r\n" in head
            # One chunk per message: size line, the JSON line, CRLF.
            for expected in (b'{"result":{"created":true}}\n', b'{"result":{"events":[]}}\n'):
                size = int(await asyncio.wait_for(reader.readuntil(b"\r\n"), 5), 16)
                assert await asyncio.wait_for(reader.readexactly(size + 2), 5) == expected + b"\r\n"
            assert not cancelled.is_set()
            writer.close()
            await asyncio.wait_for(cancelled.wait(), 5)  # the call behind it ends too
        finally:
            await endpoints.close()

    asyncio.run(scenario())
