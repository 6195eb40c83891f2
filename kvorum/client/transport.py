"""Channels to several endpoints, failover between them, and the rule for when to retry.

One ``grpc.aio`` channel per endpoint, opened lazily and kept. Calls go to the *current*
endpoint; on ``UNAVAILABLE`` the pool moves on to the next one (round robin) and, when the
request may be repeated, repeats it there -- until the call's deadline.

When is repeating safe?

* Reads (and anything else marked ``idempotent``): always, within the deadline. With several
  endpoints a read's try on one of them gets half the time left (at least ``ATTEMPT_MIN_S``),
  so that a member which hangs without failing does not take the whole deadline.
* Writes: only when the request surely never reached a server. The pool waits for the channel
  to be READY before sending; a channel that cannot connect in time is skipped before anything
  was sent. A call that fails with gRPC's own connection-failure texts was not sent either.
  Every other failure after sending (socket reset, "request timed out", the deadline) may
  have left the write applied, so it is raised, never repeated.

Auth: with ``user``/``password`` the pool calls ``Auth.Authenticate`` once per endpoint and
sends the token as the ``token`` metadata key, as etcd's clients do; an "invalid auth token"
answer (the server refused before doing anything) refreshes the token and retries once.
"""

from __future__ import annotations

import asyncio
import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import grpc
import grpc.aio

from kvorum.api.pb.etcdserverpb import rpc_pb2, rpc_pb2_grpc
from kvorum.api.pb.v3electionpb import v3election_pb2_grpc
from kvorum.api.pb.v3lockpb import v3lock_pb2_grpc
from kvorum.client.errors import (
    DeadlineExceededError,
    EtcdError,
    InvalidAuthTokenError,
    Unavailable,
    error_from_rpc,
)

__all__ = ["ClientConfig", "Endpoint", "Pool", "parse_endpoint"]

log = logging.getLogger("kvorum.client")

# gRPC's own texts for "the connection never came up" (no request bytes were written).
_NOT_SENT_MARKERS = (
    "failed to connect to all addresses",
    "connection refused",
    "connections to all backends failing",
    "dns resolution failed",
    "empty address list",
)
BACKOFF_MIN_S = 0.05
BACKOFF_MAX_S = 1.0
# The shortest try a read gets on one endpoint before it may move to the next.
ATTEMPT_MIN_S = 1.0

_STUBS: dict[str, Any] = {
    "KV": rpc_pb2_grpc.KVStub,
    "Watch": rpc_pb2_grpc.WatchStub,
    "Lease": rpc_pb2_grpc.LeaseStub,
    "Cluster": rpc_pb2_grpc.ClusterStub,
    "Maintenance": rpc_pb2_grpc.MaintenanceStub,
    "Auth": rpc_pb2_grpc.AuthStub,
    "Lock": v3lock_pb2_grpc.LockStub,
    "Election": v3election_pb2_grpc.ElectionStub,
}


@dataclass(frozen=True, slots=True)
class Endpoint:
    """Where one member serves clients: ``host:port`` as gRPC dials it, and TLS or not."""

    url: str
    target: str
    tls: bool


def parse_endpoint(url: str) -> Endpoint:
    """``http://h:p`` / ``https://h:p`` / ``h:p`` (plain unless the client has TLS files)."""
    if "://" not in url:
        return Endpoint(url, url, False)
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https", "unix", "unixs"):
        raise ValueError(f"unsupported endpoint scheme in {url!r}")
    if parts.scheme.startswith("unix"):
        return Endpoint(url, f"unix:{parts.netloc}{parts.path}", parts.scheme == "unixs")
    return Endpoint(url, parts.netloc, parts.scheme == "https")


@dataclass(frozen=True, slots=True)
class ClientConfig:
    """Everything that shapes the client's connections; one object, built once."""

    endpoints: tuple[str, ...]
    timeout_s: float = 5.0
    connect_timeout_s: float = 1.0
    keepalive_time_s: float = 30.0
    keepalive_timeout_s: float = 10.0
    ca_cert: bytes | None = None
    cert: bytes | None = None
    key: bytes | None = None
    user: str | None = None
    password: str | None = None
    max_receive_bytes: int = 2**31 - 1

    def channel_options(self) -> list[tuple[str, int]]:
        return [
            # etcd's server refuses pings more often than every 5 s (--grpc-keepalive-min-time)
            ("grpc.keepalive_time_ms", int(self.keepalive_time_s * 1000)),
            ("grpc.keepalive_timeout_ms", int(self.keepalive_timeout_s * 1000)),
            ("grpc.keepalive_permit_without_calls", 1),
            # gRPC's default reconnect backoff grows to two minutes; a member that was down
            # for a moment should be used again within a second.
            ("grpc.initial_reconnect_backoff_ms", int(BACKOFF_MIN_S * 1000)),
            ("grpc.min_reconnect_backoff_ms", int(BACKOFF_MIN_S * 1000)),
            ("grpc.max_reconnect_backoff_ms", int(BACKOFF_MAX_S * 1000)),
            ("grpc.max_receive_message_length", self.max_receive_bytes),
        ]


def never_sent(exc: Any) -> bool:
    """True when a failed call surely wrote nothing to a server (safe to repeat a write)."""
    details = (exc.details() or "").lower()
    return any(marker in details for marker in _NOT_SENT_MARKERS)


class Pool:
    """The client's channels, the current endpoint and the failover/retry loop."""

    def __init__(self, config: ClientConfig) -> None:
        if not config.endpoints:
            raise ValueError("at least one endpoint is needed")
        self.config = config
        self.endpoints = [parse_endpoint(u) for u in config.endpoints]
        self._channels: dict[int, Any] = {}
        self._stubs: dict[tuple[int, str], Any] = {}
        self._tokens: dict[int, str] = {}
        self.current = 0
        self._closed = False

    # -- channels -------------------------------------------------------------------------

    def channel(self, index: int) -> Any:
        ch = self._channels.get(index)
        if ch is None:
            if self._closed:
                raise EtcdError("client is closed", "CANCELLED")
            ep = self.endpoints[index]
            options = self.config.channel_options()
            if ep.tls or self.config.ca_cert is not None:
                creds = grpc.ssl_channel_credentials(
                    root_certificates=self.config.ca_cert,
                    private_key=self.config.key,
                    certificate_chain=self.config.cert,
                )
                ch = grpc.aio.secure_channel(ep.target, creds, options=options)
            else:
                ch = grpc.aio.insecure_channel(ep.target, options=options)
            self._channels[index] = ch
        return ch

    def stub(self, index: int, service: str) -> Any:
        # Stubs are cached: building one creates a callable per method of the service.
        stub = self._stubs.get((index, service))
        if stub is None:
            stub = self._stubs[(index, service)] = _STUBS[service](self.channel(index))
        return stub

    async def ready(self, index: int, timeout_s: float, *, fail_fast: bool = True) -> bool:
        """Wait up to ``timeout_s`` for endpoint ``index`` to be connected.

        With ``fail_fast``, a channel in TRANSIENT_FAILURE (it has just failed to connect:
        refused, unreachable) counts as down at once rather than after the whole timeout, so
        failover is quick; gRPC keeps reconnecting it in the background (backoff <=
        BACKOFF_MAX_S). Without, the wait spans that backoff: for a call that has no other
        member to go to, a member restarted a moment ago is not reported down.
        """
        ch = self.channel(index)
        loop = asyncio.get_running_loop()
        give_up_at = loop.time() + max(timeout_s, 0.0)
        state = ch.get_state(try_to_connect=True)
        while state != grpc.ChannelConnectivity.READY:
            if state == grpc.ChannelConnectivity.SHUTDOWN or (
                fail_fast and state == grpc.ChannelConnectivity.TRANSIENT_FAILURE
            ):
                return False
            left_s = give_up_at - loop.time()
            if left_s <= 0:
                return False
            try:
                await asyncio.wait_for(ch.wait_for_state_change(state), left_s)
            except TimeoutError:
                return False
            state = ch.get_state(try_to_connect=True)
        return True

    def advance(self, from_index: int) -> None:
        """Move to the endpoint after ``from_index`` (unless someone already moved on)."""
        if self.current == from_index and len(self.endpoints) > 1:
            self.current = (from_index + 1) % len(self.endpoints)
            log.info(
                "client: failing over from %s to %s",
                self.endpoints[from_index].url,
                self.endpoints[self.current].url,
            )

    async def close(self) -> None:
        self._closed = True
        channels, self._channels = list(self._channels.values()), {}
        self._stubs.clear()
        for ch in channels:
            await ch.close()

    # -- auth -----------------------------------------------------------------------------

    async def metadata(self, index: int, timeout_s: float) -> Sequence[tuple[str, str]] | None:
        """The ``token`` metadata for endpoint ``index`` (authenticating first if needed)."""
        if self.config.user is None:
            return None
        token = self._tokens.get(index)
        if token is None:
            request = rpc_pb2.AuthenticateRequest(
                name=self.config.user, password=self.config.password or ""
            )
            try:
                response = await self.stub(index, "Auth").Authenticate(request, timeout=timeout_s)
            except grpc.aio.AioRpcError as exc:
                raise error_from_rpc(exc) from None
            token = str(response.token)
            self._tokens[index] = token
        return (("token", token),)

    def forget_token(self, index: int) -> None:
        """Drop endpoint ``index``'s token (the server refused it); the next call logs in again."""
        self._tokens.pop(index, None)

    # -- unary calls with failover ---------------------------------------------------------

    async def unary(
        self,
        service: str,
        method: str,
        request: Any,
        *,
        idempotent: bool,
        timeout_s: float | None = None,
        endpoint: int | None = None,
    ) -> Any:
        """Call ``service.method(request)`` with failover; see the module doc for retries.

        ``timeout_s`` bounds the whole call including retries (default: the client's;
        ``math.inf``: no deadline, for calls that block by design such as Lock). ``endpoint``
        pins the call to one member (Status, Defragment): no failover then.
        """
        loop = asyncio.get_running_loop()
        budget_s = self.config.timeout_s if timeout_s is None else timeout_s
        deadline = loop.time() + budget_s
        backoff_s = BACKOFF_MIN_S
        tried_in_round = 0
        reauthenticated = False
        last_error: EtcdError | None = None
        while True:
            remaining_s = deadline - loop.time()
            if remaining_s <= 0:
                raise last_error or DeadlineExceededError(
                    f"{service}.{method}: deadline of {budget_s:g}s exceeded", "DEADLINE_EXCEEDED"
                )
            if tried_in_round >= len(self.endpoints):
                # Every endpoint failed once: pause before the next round.
                tried_in_round = 0
                await asyncio.sleep(min(backoff_s, remaining_s))
                backoff_s = min(backoff_s * 2, BACKOFF_MAX_S)
                continue
            index = self.current if endpoint is None else endpoint
            tried_in_round += 1
            url = self.endpoints[index].url
            # A call pinned to one member has nowhere else to go: it waits out the channel's
            # reconnect backoff, then reports the member down (as etcdctl after its dial timeout).
            connect_s = self.config.connect_timeout_s
            if endpoint is not None:
                connect_s += BACKOFF_MAX_S
            if not await self.ready(index, min(connect_s, remaining_s), fail_fast=endpoint is None):
                # Nothing was sent: any request may go to the next endpoint.
                last_error = Unavailable(f"cannot connect to {url}", "UNAVAILABLE")
                if endpoint is not None:
                    raise last_error
                self.advance(index)
                continue
            try:
                md = await self.metadata(index, min(remaining_s, self.config.timeout_s))
            except Unavailable as login_error:
                # Logging in failed for want of a member: the request itself was not sent.
                last_error = login_error
                if endpoint is not None:
                    raise
                self.advance(index)
                continue
            attempt_s = remaining_s
            if idempotent and endpoint is None and len(self.endpoints) > 1:
                # A member that hangs (paused, cut off without a reset) never answers; a read
                # gives it half the time left and then asks the next one.
                attempt_s = max(remaining_s / 2, min(remaining_s, ATTEMPT_MIN_S))
            try:
                call_timeout = None if math.isinf(attempt_s) else attempt_s
                return await getattr(self.stub(index, service), method)(
                    request, timeout=call_timeout, metadata=md
                )
            except grpc.aio.AioRpcError as exc:
                err = error_from_rpc(exc)
                if isinstance(err, InvalidAuthTokenError) and not reauthenticated:
                    self.forget_token(index)
                    reauthenticated = True
                    continue
                if exc.code() == grpc.StatusCode.DEADLINE_EXCEEDED:
                    if attempt_s < remaining_s:
                        last_error = DeadlineExceededError(err.text, err.code)
                        self.advance(index)
                        continue
                    raise DeadlineExceededError(err.text, err.code) from None
                if not isinstance(err, Unavailable):
                    raise err from None
                if not (idempotent or never_sent(exc)):
                    raise err from None
                log.debug("client: %s.%s on %s: %s; retrying", service, method, url, err.text)
                last_error = err
                if endpoint is None:
                    self.advance(index)
