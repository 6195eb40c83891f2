"""The member's HTTP endpoints: metrics, health, version and the JSON gateway.

Served on ``--listen-metrics-urls`` and on the plain-HTTP client URLs, where ``portmux``
hands over every connection that does not open with the HTTP/2 preface (``adopt``).

What is served, and whose behaviour it copies (checked against a running etcd 3.4.23):

- ``/metrics``: Prometheus text format, any method (etcd's promhttp handler takes any).
- ``/health`` (etcd 3.4): GET only (405 with ``Allow: GET`` otherwise). Unhealthy when an
  alarm is raised (``?exclude=NOSPACE`` ignores one, as 3.4.10+ does), when no leader is
  known, or when a linearizable read does not complete within 1 s. 200
  ``{"health":"true"}`` or 503 ``{"health":"false"}`` plus a newline (Go's ``http.Error``).
  ``?serializable=true`` skips the leader check and reads locally, as etcd 3.5 does (3.4.23
  ignores the parameter).
- ``/livez``, ``/readyz``: not in etcd 3.4; served as etcd 3.5 serves them -- named checks,
  ``ok`` plus a newline when all pass (``?verbose`` lists them), 503 with
  ``[-]<check> failed: <reason>`` lines and ``<livez|readyz> check failed`` otherwise,
  ``?exclude=<check>``, and one sub-path per check.
- ``/v3/...`` and ``/v3beta/...`` (POST): etcd's JSON gateway, forwarded to the member's gRPC
  listener (``kvorum.server.gateway``); the streaming calls answer chunked, one JSON line per
  message, and end with the connection (closed after them).
- ``/version``: ``{"etcdserver":"3.4.23","etcdcluster":"3.4.0"}``.

Why a small HTTP/1.1 handler on asyncio streams and not a web framework: a few GET endpoints
and JSON POSTs need request-line, header and body parsing and nothing else; a framework would
be the largest dependency of the member for that. Limits: request head 16 KiB, 100 headers,
request bodies up to 64 KiB (4 MiB for the gateway), 128 connections, 30 s idle keep-alive.
"""

from __future__ import annotations

import asyncio
import contextlib
import email.utils
import json
import logging
import socket
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol
from urllib.parse import parse_qs, urlsplit

from kvorum.server.gateway import Gateway, GatewayStream
from kvorum.server.metrics import CONTENT_TYPE as METRICS_CONTENT_TYPE
from kvorum.server.metrics import ETCD_CLUSTER_VERSION_FULL, ServerMetrics

if TYPE_CHECKING:
    from kvorum.server.member import KvorumMember

__all__ = [
    "HEALTH_READ_TIMEOUT_S",
    "HealthSource",
    "HttpEndpoints",
    "MemberHealth",
    "Response",
    "parse_listen_url",
]

logger = logging.getLogger("kvorum.server.http")

#: etcd 3.4's /health gives its read one second.
HEALTH_READ_TIMEOUT_S = 1.0
MAX_HEAD_BYTES = 16 * 1024
MAX_HEADERS = 100
MAX_BODY_BYTES = 64 * 1024
#: A gateway request carries a whole etcd request (up to 1.5 MiB, base64 in JSON: 4/3 more).
MAX_GATEWAY_BODY_BYTES = 4 * 1024 * 1024
MAX_CONNECTIONS = 128
IDLE_TIMEOUT_S = 30.0
MAX_REQUESTS_PER_CONNECTION = 10_000
HEALTH_WARNING_INTERVAL_S = 1.0

_TEXT = "text/plain; charset=utf-8"
_JSON = "application/json"
_REASONS = {
    200: "OK",
    400: "Bad Request",
    401: "Unauthorized",
    403: "Forbidden",
    404: "Not Found",
    405: "Method Not Allowed",
    408: "Request Timeout",
    409: "Conflict",
    413: "Request Entity Too Large",
    429: "Too Many Requests",
    500: "Internal Server Error",
    501: "Not Implemented",
    503: "Service Unavailable",
    504: "Gateway Timeout",
}
#: etcd's gateway answers with these on every /v3 response (its CORS wrapper).
_GATEWAY_HEADERS = (
    ("Access-Control-Allow-Headers", "accept, content-type, authorization"),
    ("Access-Control-Allow-Methods", "POST, GET, OPTIONS, PUT, DELETE"),
    ("Access-Control-Allow-Origin", "*"),
)
_GRPC_METADATA = (("Grpc-Metadata-Content-Type", "application/grpc"),)


class HealthSource(Protocol):
    """What the health endpoints ask the member (``MemberHealth`` over a real member)."""

    def alarms(self) -> Sequence[str]:
        """Names of the raised alarms (``NOSPACE``, ``CORRUPT``), one per raised alarm."""
        ...

    def has_leader(self) -> bool: ...

    async def read(self, serializable: bool, timeout_s: float) -> str | None:
        """Serve one read; None if it succeeded, else why not."""
        ...

    def versions(self) -> tuple[str, str]:
        """(server version, cluster version) as /version reports them."""
        ...


class MemberHealth:
    """``HealthSource`` over a running ``KvorumMember``."""

    def __init__(self, member: KvorumMember) -> None:
        self._member = member

    def alarms(self) -> Sequence[str]:
        return [a.alarm.name for a in self._member.alarms.get()]

    def has_leader(self) -> bool:
        return bool(self._member.raft.leader_id)

    async def read(self, serializable: bool, timeout_s: float) -> str | None:
        from kvorum.mvcc import RangeRequest

        request = RangeRequest(key=b"health", limit=1, keys_only=True)
        try:
            async with asyncio.timeout(timeout_s):
                await self._member.range(request, serializable)
        except TimeoutError:
            return f"read not served within {timeout_s:g} s"
        except Exception as exc:
            return str(exc) or type(exc).__name__
        return None

    def versions(self) -> tuple[str, str]:
        from kvorum.server.member import ETCD_VERSION

        # No member proposes a cluster version yet: all speak 3.4, so the cluster does.
        cluster = self._member.membership.cluster_version()
        return ETCD_VERSION, cluster or ETCD_CLUSTER_VERSION_FULL


@dataclass(frozen=True, slots=True)
class Response:
    status: int
    body: bytes
    content_type: str = _TEXT
    headers: tuple[tuple[str, str], ...] = ()
    #: A streaming answer: sent chunked, ``body`` unused; ``cancel`` ends it early.
    stream: AsyncIterator[bytes] | None = None
    cancel: Callable[[], None] | None = None


def _error(status: int, text: str, headers: tuple[tuple[str, str], ...] = ()) -> Response:
    """Go's ``http.Error``: the text plus a newline, text/plain, nosniff."""
    return Response(
        status,
        (text + "\n").encode(),
        _TEXT,
        (("X-Content-Type-Options", "nosniff"), *headers),
    )


def _gateway_headers(status: int) -> tuple[tuple[str, str], ...]:
    """etcd's: the CORS headers always; the gRPC metadata header on a call that succeeded."""
    return (*_GATEWAY_HEADERS, *_GRPC_METADATA) if status == 200 else _GATEWAY_HEADERS


_NOT_FOUND = _error(404, "404 page not found")
_GET_ONLY = _error(405, "Method Not Allowed", (("Allow", "GET"),))

Check = Callable[[], Awaitable[str | None]]


class HttpEndpoints:
    """The request router and the endpoint logic (no sockets: ``handle`` maps a request
    to a response); ``serve`` puts it on listeners."""

    def __init__(
        self,
        metrics: ServerMetrics,
        health: HealthSource,
        *,
        read_timeout_s: float = HEALTH_READ_TIMEOUT_S,
        gateway: Gateway | None = None,
    ) -> None:
        self._metrics = metrics
        self._health = health
        self._gateway = gateway
        self._read_timeout_s = read_timeout_s
        self._servers: list[asyncio.Server] = []
        self._connections: set[asyncio.Task[None]] = set()
        self._adopting: set[asyncio.Task[None]] = set()
        self._warned_s = float("-inf")
        # etcd 3.5's checks, in its order; a failing check's text is what the operator reads.
        self._livez: dict[str, Check] = {"serializable_read": self._serializable_read}
        self._readyz: dict[str, Check] = {
            "data_corruption": self._no_corruption,
            "serializable_read": self._serializable_read,
            "linearizable_read": self._linearizable_read,
        }

    # --- endpoints -------------------------------------------------------------------------

    async def handle(
        self, method: str, target: str, body: bytes = b"", token: str | None = None
    ) -> Response:
        parts = urlsplit(target)
        path = parts.path
        query = parse_qs(parts.query, keep_blank_values=True)
        if self._gateway is not None and self._gateway.serves(path):
            return await self._gateway_call(self._gateway, method, path, body, token)
        if path == "/metrics":
            return Response(200, await self._metrics.exposition_async(), METRICS_CONTENT_TYPE)
        if method not in ("GET", "HEAD"):
            known = path in ("/health", "/version") or path.split("/")[1] in ("livez", "readyz")
            return _GET_ONLY if known else _NOT_FOUND
        if path == "/health":
            return await self._health_34(query)
        if path == "/version":
            server, cluster = self._health.versions()
            version = {"etcdserver": server, "etcdcluster": cluster}
            return Response(200, json.dumps(version, separators=(",", ":")).encode(), _JSON)
        for root, checks in (("/livez", self._livez), ("/readyz", self._readyz)):
            if path == root:
                return await self._run_checks(root[1:], checks, query)
            if path.startswith(root + "/") and path[len(root) + 1 :] in checks:
                name = path[len(root) + 1 :]
                return await self._run_checks(root[1:], {name: checks[name]}, query)
        return _NOT_FOUND

    async def _gateway_call(
        self, gateway: Gateway, method: str, path: str, body: bytes, token: str | None
    ) -> Response:
        if method != "POST":
            return _error(405, "Method Not Allowed", _GATEWAY_HEADERS)
        if gateway.streams(path):
            opened = await gateway.open_stream(path, body, token)
            if isinstance(opened, GatewayStream):
                headers = _gateway_headers(opened.status)
                return Response(opened.status, b"", _JSON, headers, opened.chunks, opened.cancel)
            return Response(opened.status, opened.body, _JSON, _GATEWAY_HEADERS)
        reply = await gateway.call(path, body, token)
        return Response(reply.status, reply.body, _JSON, _gateway_headers(reply.status))

    async def _health_34(self, query: Mapping[str, list[str]]) -> Response:
        serializable = query.get("serializable", ["false"])[-1] == "true"
        excluded = set(query.get("exclude", []))
        reason = await self._health_failure(serializable, excluded)
        self._metrics.record_health(reason is None)
        if reason is None:
            # Go sniffs the JSON as text/plain; etcd does not set a type for this one.
            return Response(200, b'{"health":"true"}', _TEXT)
        self._warn(f"/health error; {reason} (status code 503)")
        return _error(503, '{"health":"false"}')

    async def _health_failure(self, serializable: bool, excluded: set[str]) -> str | None:
        for alarm in self._health.alarms():
            if alarm not in excluded:
                return f"alarm {alarm} is raised"
        if not serializable and not self._health.has_leader():
            return "no leader"
        failure = await self._health.read(serializable, self._read_timeout_s)
        if failure is not None:
            kind = "serializable" if serializable else "linearizable"
            return f"{kind} read failed: {failure}"
        return None

    async def _serializable_read(self) -> str | None:
        return await self._health.read(True, self._read_timeout_s)

    async def _linearizable_read(self) -> str | None:
        return await self._health.read(False, self._read_timeout_s)

    async def _no_corruption(self) -> str | None:
        if "CORRUPT" in self._health.alarms():
            return "alarm activated: CORRUPT"
        return None

    async def _run_checks(
        self, kind: str, checks: Mapping[str, Check], query: Mapping[str, list[str]]
    ) -> Response:
        excluded = set(query.get("exclude", []))
        lines: list[str] = []
        failed = False
        for name, check in checks.items():
            if name in excluded:
                lines.append(f"[+]{name} excluded: ok")
                continue
            reason = await check()
            if reason is None:
                lines.append(f"[+]{name} ok")
            else:
                failed = True
                lines.append(f"[-]{name} failed: {reason}")
        if failed:
            lines.append(f"{kind} check failed")
            self._warn(f"/{kind} check failed: {'; '.join(lines[:-1])}")
            return _error(503, "\n".join(lines))
        body = "".join(f"{line}\n" for line in lines) if "verbose" in query else ""
        return Response(
            200, (body + "ok\n").encode(), _TEXT, (("X-Content-Type-Options", "nosniff"),)
        )

    def _warn(self, text: str) -> None:
        now_s = time.monotonic()
        if now_s - self._warned_s >= HEALTH_WARNING_INTERVAL_S:
            self._warned_s = now_s
            logger.warning("%s", text)

    # --- serving ---------------------------------------------------------------------------

    async def serve(self, urls: Sequence[str]) -> None:
        """Listen on every URL (``http://host:port``); raises OSError/ValueError if one fails."""
        for url in urls:
            host, port = parse_listen_url(url)
            server = await asyncio.start_server(
                self._connection, host, port, limit=MAX_HEAD_BYTES, reuse_address=True
            )
            self._servers.append(server)
            logger.info("serving /metrics and /health on %s", url)

    def adopt(self, sock: socket.socket) -> None:
        """Serve HTTP on an accepted connection (from the client port's mux); on the loop."""
        task = asyncio.get_running_loop().create_task(self._adopted(sock), name="http-conn")
        # Keep a reference until it ends (the loop holds tasks weakly).
        self._adopting.add(task)
        task.add_done_callback(self._adopting.discard)

    def handoff(self, loop: asyncio.AbstractEventLoop) -> Callable[[socket.socket], None]:
        """``adopt`` as a callable for another thread (the mux's): runs it on ``loop``."""

        def handoff(sock: socket.socket) -> None:
            loop.call_soon_threadsafe(self.adopt, sock)

        return handoff

    async def _adopted(self, sock: socket.socket) -> None:
        try:
            reader, writer = await asyncio.open_connection(sock=sock, limit=MAX_HEAD_BYTES)
        except OSError:
            sock.close()
            return
        await self._connection(reader, writer)

    async def close(self) -> None:
        if self._gateway is not None:
            await self._gateway.close()
        for server in self._servers:
            server.close()
        for task in [*self._connections, *self._adopting]:
            task.cancel()
        await asyncio.gather(*self._connections, *self._adopting, return_exceptions=True)
        for server in self._servers:
            with contextlib.suppress(Exception):
                await server.wait_closed()
        self._servers.clear()

    async def _connection(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        if len(self._connections) >= MAX_CONNECTIONS or task is None:
            writer.close()
            return
        self._connections.add(task)
        try:
            await self._serve_connection(reader, writer)
        except (ConnectionError, asyncio.IncompleteReadError, TimeoutError, ValueError):
            pass  # the peer went away or spoke nonsense: nothing to answer
        finally:
            self._connections.discard(task)
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()

    async def _serve_connection(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        for _ in range(MAX_REQUESTS_PER_CONNECTION):
            async with asyncio.timeout(IDLE_TIMEOUT_S):
                request = await _read_request(reader)
            if request is None:
                return
            if isinstance(request, Response):
                await _write(writer, request, head_only=False, keep_alive=False)
                return
            method, target, keep_alive, body, token = request
            response = await self.handle(method, target, body, token)
            if response.stream is not None:
                # A stream ends with the connection: a watch lasts until the client leaves.
                await _write_stream(reader, writer, response)
                return
            await _write(writer, response, head_only=method == "HEAD", keep_alive=keep_alive)
            if not keep_alive:
                return


async def _read_request(
    reader: asyncio.StreamReader,
) -> tuple[str, str, bool, bytes, str | None] | Response | None:
    """(method, target, keep-alive, body, Authorization header) of the next request; a
    Response to refuse it with; None at a clean end of the connection."""
    try:
        line = await reader.readuntil(b"\r\n")
    except asyncio.IncompleteReadError as exc:
        if not exc.partial:
            return None
        raise
    except asyncio.LimitOverrunError:
        return _error(400, "400 Bad Request: request line too long")
    words = line.decode("latin-1").split()
    if len(words) != 3 or not words[2].startswith("HTTP/1."):
        return _error(400, "400 Bad Request")
    method, target, version = words
    headers: dict[str, str] = {}
    for _ in range(MAX_HEADERS + 1):
        try:
            raw = await reader.readuntil(b"\r\n")
        except asyncio.LimitOverrunError:
            return _error(400, "400 Bad Request: header too long")
        if raw == b"\r\n":
            break
        name, sep, value = raw.decode("latin-1").partition(":")
        if not sep:
            return _error(400, "400 Bad Request: malformed header")
        headers[name.strip().lower()] = value.strip()
    else:
        return _error(400, "400 Bad Request: too many headers")
    if "chunked" in headers.get("transfer-encoding", "").lower():
        return _error(400, "400 Bad Request: chunked request bodies are not accepted")
    length_text = headers.get("content-length", "0")
    if not length_text.isdigit():
        return _error(400, "400 Bad Request: bad Content-Length")
    length = int(length_text)
    limit = MAX_GATEWAY_BODY_BYTES if target.startswith(("/v3/", "/v3beta/")) else MAX_BODY_BYTES
    if length > limit:
        return _error(413, "413 Request Entity Too Large")
    body = await reader.readexactly(length) if length else b""
    connection = headers.get("connection", "").lower()
    keep_alive = connection != "close" if version == "HTTP/1.1" else connection == "keep-alive"
    return method, target, keep_alive, body, headers.get("authorization")


async def _write(
    writer: asyncio.StreamWriter, response: Response, *, head_only: bool, keep_alive: bool
) -> None:
    head = [
        f"HTTP/1.1 {response.status} {_REASONS.get(response.status, 'Unknown')}",
        f"Content-Type: {response.content_type}",
        f"Content-Length: {len(response.body)}",
        f"Date: {email.utils.formatdate(usegmt=True)}",
        *(f"{name}: {value}" for name, value in response.headers),
    ]
    if not keep_alive:
        head.append("Connection: close")
    writer.write(("\r\n".join(head) + "\r\n\r\n").encode("latin-1"))
    if not head_only:
        writer.write(response.body)
    await writer.drain()


async def _write_stream(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, response: Response
) -> None:
    """Send a streaming answer chunked, one chunk per message, until it ends or the client
    goes away (its end of the connection closing cancels the call behind the stream)."""
    assert response.stream is not None
    head = [
        f"HTTP/1.1 {response.status} {_REASONS.get(response.status, 'Unknown')}",
        f"Content-Type: {response.content_type}",
        f"Date: {email.utils.formatdate(usegmt=True)}",
        *(f"{name}: {value}" for name, value in response.headers),
        "Transfer-Encoding: chunked",
        "Connection: close",
    ]
    writer.write(("\r\n".join(head) + "\r\n\r\n").encode("latin-1"))

    async def client_gone() -> None:
        # Nothing more is read from this connection: whatever comes is dropped until EOF.
        while await reader.read(MAX_HEAD_BYTES):
            pass

    watcher = asyncio.get_running_loop().create_task(client_gone())
    try:
        writing = asyncio.get_running_loop().create_task(_send_chunks(writer, response.stream))
        await asyncio.wait([writing, watcher], return_when=asyncio.FIRST_COMPLETED)
        if not writing.done():
            writing.cancel()
        await asyncio.gather(writing, return_exceptions=True)
        if writing.cancelled() or writing.exception() is not None:
            return
        writer.write(b"0\r\n\r\n")
        await writer.drain()
    finally:
        if response.cancel is not None:
            response.cancel()
        watcher.cancel()
        await asyncio.gather(watcher, return_exceptions=True)


async def _send_chunks(writer: asyncio.StreamWriter, chunks: AsyncIterator[bytes]) -> None:
    async for chunk in chunks:
        writer.write(b"%x\r\n%s\r\n" % (len(chunk), chunk))
        await writer.drain()


def parse_listen_url(url: str) -> tuple[str, int]:
    """(host, port) of an ``http://host:port`` listen URL; ValueError for anything else."""
    parts = urlsplit(url)
    if parts.scheme == "https":
        raise ValueError(f"cannot serve metrics on {url}: TLS on the metrics URL is not supported")
    if parts.scheme != "http" or not parts.hostname or parts.port is None:
        raise ValueError(f"cannot serve metrics on {url}: expected http://host:port")
    return parts.hostname, parts.port
