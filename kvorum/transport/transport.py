"""``PeerTransport``: the member's raft messaging to and from its peers.

A thin I/O shell: the server hands it the messages of each ``Ready`` and gets back,
through callbacks, the messages that arrive, the peers that could not be reached and how
snapshot sends ended. It never retries a message — raft does, once it is told.
"""

from __future__ import annotations

import asyncio
import logging
import random
import ssl
import time
from collections.abc import Callable, Iterable, Sequence

from kvorum.raft.types import Logger, Message
from kvorum.transport.backoff import RateLimiter
from kvorum.transport.inbound import AcceptPeerCert, Listener
from kvorum.transport.info import fetch_cluster_info
from kvorum.transport.limits import TransportLimits
from kvorum.transport.outbound import OutboundContext, Peer, PeerStats

__all__ = ["PeerTransport"]

_DEFAULT_LOGGER = logging.getLogger("kvorum.transport")


class PeerTransport:
    """Sends raft messages to the peers it is told about; delivers those it receives.

    Callbacks run on the event loop, never from inside ``send()``, and must not block:
    ``on_message(msg)`` for every message received (from any member of the cluster,
    known or not); ``on_unreachable(peer_id)`` when messages to a peer were, or may have
    been, lost (raft's ``report_unreachable``); ``on_snapshot_status(peer_id, ok)`` once
    per SNAP message sent (raft's ``report_snapshot``).
    """

    def __init__(
        self,
        member_id: int,
        cluster_id: int,
        listen_urls: Sequence[str],
        on_message: Callable[[Message], None],
        on_unreachable: Callable[[int], None],
        on_snapshot_status: Callable[[int, bool], None],
        *,
        logger: Logger | None = None,
        limits: TransportLimits | None = None,
        rng: random.Random | None = None,
        server_ssl: ssl.SSLContext | None = None,
        client_ssl: ssl.SSLContext | None = None,
        accept_peer_cert: AcceptPeerCert | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.member_id = member_id
        self.cluster_id = cluster_id
        self._listen_urls = tuple(listen_urls)
        self._limits = limits if limits is not None else TransportLimits()
        self._logger: Logger = logger if logger is not None else _DEFAULT_LOGGER
        self._client_ssl = client_ssl
        log_limiter = RateLimiter(self._limits.log_interval_s, clock)
        self._log_limiter = log_limiter
        self._ctx = OutboundContext(
            member_id=member_id,
            cluster_id=cluster_id,
            limits=self._limits,
            client_ssl=client_ssl,
            logger=self._logger,
            rng=rng if rng is not None else random.Random(),
            log_limiter=log_limiter,
            on_unreachable=on_unreachable,
            on_snapshot_status=on_snapshot_status,
        )
        self._on_unreachable = on_unreachable
        self._listener = Listener(
            member_id,
            cluster_id,
            self._limits,
            server_ssl,
            on_message,
            self._logger,
            log_limiter,
            accept_peer_cert,
        )
        self._peers: dict[int, Peer] = {}
        # Connection tasks of removed peers, still finishing their cancellation.
        self._retiring: set[asyncio.Task[None]] = set()
        self._running = False

    @property
    def bound_urls(self) -> tuple[str, ...]:
        """The URLs actually listened on (port 0 in a listen URL becomes the real port)."""
        return self._listener.bound_urls

    async def start(self) -> None:
        if self._running:
            raise RuntimeError("transport already started")
        await self._listener.start(self._listen_urls)
        self._running = True
        for peer in self._peers.values():
            peer.open()
        self._logger.info(
            "member %x listening for peers on %s", self.member_id, ", ".join(self.bound_urls)
        )

    async def stop(self) -> None:
        """Close the listener and every connection; pending sends are dropped silently."""
        self._running = False
        peers, self._peers = list(self._peers.values()), {}
        for peer in peers:
            self._retire(peer)
        await self._listener.stop()
        retiring = list(self._retiring)
        await asyncio.gather(*retiring, return_exceptions=True)
        self._retiring.clear()

    # --- membership ---------------------------------------------------------------

    def add_peer(self, peer_id: int, urls: Sequence[str]) -> None:
        """Start sending to ``peer_id`` at ``urls``: its small-message stream is dialled at
        once (or when the transport starts), the bulk one on first use."""
        if peer_id in self._peers:
            self.update_peer(peer_id, urls)
            return
        peer = self._peers[peer_id] = Peer(peer_id, urls, self._ctx)
        if self._running:
            peer.open()

    def update_peer(self, peer_id: int, urls: Sequence[str]) -> None:
        peer = self._peers.get(peer_id)
        if peer is None:
            self.add_peer(peer_id, urls)
        else:
            peer.update_urls(urls)

    def remove_peer(self, peer_id: int) -> None:
        peer = self._peers.pop(peer_id, None)
        if peer is not None:
            self._retire(peer)

    def peer_ids(self) -> tuple[int, ...]:
        return tuple(self._peers)

    def peer_stats(self, peer_id: int) -> PeerStats | None:
        peer = self._peers.get(peer_id)
        return peer.stats() if peer is not None else None

    # --- messages -----------------------------------------------------------------

    def send(self, messages: Iterable[Message]) -> None:
        """Queue ``messages`` for their peers and return at once.

        A message that cannot be queued (peer unknown, inactive or its queue full) is
        dropped; for a known peer raft is told it is unreachable, once per call, soon after
        the call returns. Sending on a transport that is not running drops silently.
        """
        if not self._running:
            return  # stopped (or not started): nothing can be sent, raft needs no report
        peers = self._peers
        unreachable: set[int] = set()
        for msg in messages:
            peer = peers.get(msg.to)
            if peer is None:
                if self._log_limiter.allow(("unknown-peer", msg.to)):
                    self._logger.warning(
                        "dropping %s to member %x: no URL is known for it",
                        msg.type.name,
                        msg.to,
                    )
                continue
            if not peer.send(msg):
                unreachable.add(msg.to)
        if unreachable:
            # Reported on the next loop iteration, never from inside send(): the caller is
            # usually in the middle of handling a Ready and must not be re-entered.
            asyncio.get_running_loop().call_soon(self._report_unreachable, tuple(unreachable))

    def _report_unreachable(self, peer_ids: tuple[int, ...]) -> None:
        for peer_id in peer_ids:
            self._on_unreachable(peer_id)

    # --- cluster info ---------------------------------------------------------------

    def set_cluster_info_provider(self, provider: Callable[[], bytes] | None) -> None:
        """Serve ``provider()`` to members that ask for cluster info (see ``info.py``)."""
        self._listener.info_provider = provider

    async def fetch_cluster_info(self, url: str, timeout_s: float = 5.0) -> bytes:
        return await fetch_cluster_info(
            url,
            timeout_s=timeout_s,
            client_ssl=self._client_ssl,
            max_bytes=self._limits.max_cluster_info_bytes,
            cluster_id=self.cluster_id,
            member_id=self.member_id,
        )

    def _retire(self, peer: Peer) -> None:
        for task in peer.close():
            self._retiring.add(task)
            task.add_done_callback(self._retiring.discard)
