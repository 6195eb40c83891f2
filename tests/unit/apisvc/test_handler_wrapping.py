"""`build_server` wraps every handler once at registration (no per-call grpc.aio interceptor):
the metrics are still counted per method and code, and the auth rules still hold, both in the
common case (auth off, no token: the fast path) and when a token comes or auth is on."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import grpc
import pytest

from kvorum.api.grpcserver import build_server
from kvorum.api.pb.etcdserverpb import rpc_pb2, rpc_pb2_grpc
from kvorum.auth import AuthInfo, InvalidAuthTokenError
from kvorum.auth.context import ANONYMOUS, CALLER
from kvorum.mvcc import PutRequest, PutResponse
from kvorum.server.metrics import GrpcMetricsInterceptor, ServerMetrics
from tests.unit.apisvc.standalone import StandaloneMember
from tests.unit.server.test_metrics import sample


class _Store:
    """The two attributes the auth wrapper reads of an auth store."""

    def __init__(self) -> None:
        self.enabled = False
        self.cn_as_user = False
        self.revision = 1

    def check_permitted(self, *args: Any, **kwargs: Any) -> None:
        return None


class _AuthMember(StandaloneMember):
    """Knows one token, "alice-token"; records the caller each put was proposed as."""

    def __init__(self, data_dir: Path) -> None:
        super().__init__(data_dir)
        self.auth = _Store()
        self.callers: list[AuthInfo | None] = []

    async def auth_info(self, token: str | None) -> AuthInfo | None:
        if token is None:
            return None
        if token != "alice-token":
            raise InvalidAuthTokenError("unknown token")
        return AuthInfo("alice", 1)

    async def put(self, req: PutRequest) -> PutResponse:
        self.callers.append(CALLER.get())
        return await super().put(req)


async def _drive(member: _AuthMember, metrics: ServerMetrics) -> list[str]:
    """Puts in four situations; returns each call's status code name."""
    server = build_server(
        member,
        interceptors=[GrpcMetricsInterceptor(metrics)],
        auth=member,  # type: ignore[arg-type]
    )
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    codes: list[str] = []
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
            kv = rpc_pb2_grpc.KVStub(channel)  # type: ignore[no-untyped-call]

            async def put(key: bytes, token: str | None = None) -> None:
                metadata = (("token", token),) if token is not None else None
                try:
                    await kv.Put(rpc_pb2.PutRequest(key=key), metadata=metadata, timeout=10)
                    codes.append("OK")
                except grpc.aio.AioRpcError as err:
                    codes.append(err.code().name)

            await put(b"a")  # auth off, no token: the fast path
            await put(b"")  # refused by the servicer: still counted, by its code
            await put(b"a", "bogus")  # auth off, but a token that names nobody fails
            await put(b"a", "alice-token")  # auth off, a valid token: proposed as nobody
            member.auth.enabled = True
            await put(b"a", "alice-token")  # auth on: proposed as alice
            await put(b"a")  # auth on, no token: proposed as anonymous
    finally:
        await server.stop(None)
    return codes


def test_wrapped_handlers_count_and_check(tmp_path: Path) -> None:
    member = _AuthMember(tmp_path)
    metrics = ServerMetrics()
    try:
        codes = asyncio.run(_drive(member, metrics))
    finally:
        member.close()
    assert codes == ["OK", "INVALID_ARGUMENT", "UNAUTHENTICATED", "OK", "OK", "OK"]
    assert member.callers == [None, None, AuthInfo("alice", 1), ANONYMOUS]

    text = metrics.exposition().decode()
    labels = 'grpc_method="Put",grpc_service="etcdserverpb.KV",grpc_type="unary"'
    assert sample(text, "grpc_server_started_total", "{" + labels + "}") == 6
    for code, count in (("OK", 4), ("InvalidArgument", 1), ("Unauthenticated", 1)):
        handled = sample(text, "grpc_server_handled_total", f'{{grpc_code="{code}",{labels}}}')
        assert handled == count, code


@pytest.mark.parametrize("wrapped", [True, False])
def test_unknown_method_is_unimplemented(tmp_path: Path, wrapped: bool) -> None:
    """Registration-time wrapping leaves grpc's own answer for methods nobody serves."""
    member = _AuthMember(tmp_path)

    async def call() -> str:
        interceptors = [GrpcMetricsInterceptor(ServerMetrics())] if wrapped else []
        server = build_server(member, interceptors=interceptors)
        port = server.add_insecure_port("127.0.0.1:0")
        await server.start()
        try:
            async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
                method = channel.unary_unary("/etcdserverpb.KV/NoSuchMethod")
                with pytest.raises(grpc.aio.AioRpcError) as err:
                    await method(b"", timeout=10)
                return str(err.value.code().name)
        finally:
            await server.stop(None)

    try:
        assert asyncio.run(call()) == "UNIMPLEMENTED"
    finally:
        member.close()
