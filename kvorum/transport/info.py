"""Asking a running member for its cluster info (used by a member joining a cluster).

A member started with ``--initial-cluster-state existing`` knows its peers' URLs but not
the cluster id or the other members' ids; it asks one of them. The answer is opaque bytes
produced by the provider the server installs on its transport.
"""

from __future__ import annotations

import asyncio
import ssl

from kvorum.transport.codec import CodecError
from kvorum.transport.urls import parse_peer_url
from kvorum.transport.wire import (
    INFO_STATUS,
    FrameKind,
    FrameReader,
    Hello,
    HelloReply,
    HelloStatus,
    StreamKind,
)

__all__ = ["ClusterInfoError", "fetch_cluster_info"]


class ClusterInfoError(Exception):
    """The member at the URL could not be asked, or had no cluster info to give."""


async def fetch_cluster_info(
    url: str,
    *,
    timeout_s: float = 5.0,
    client_ssl: ssl.SSLContext | None = None,
    max_bytes: int = 16 * 1024 * 1024,
    cluster_id: int = 0,
    member_id: int = 0,
) -> bytes:
    """The cluster info served at peer URL ``url``; ``ClusterInfoError`` if there is none.

    ``cluster_id`` 0 asks whatever cluster the member belongs to; a non-zero id makes a
    member of another cluster refuse.
    """
    address = parse_peer_url(url)
    if address.tls and client_ssl is None:
        raise ClusterInfoError(f"{url} needs TLS but no client TLS context was given")
    writer: asyncio.StreamWriter | None = None
    try:
        async with asyncio.timeout(timeout_s):
            reader, writer = await asyncio.open_connection(
                address.host, address.port, ssl=client_ssl if address.tls else None
            )
            writer.write(Hello(StreamKind.INFO, cluster_id, member_id, 0).encode())
            reply = HelloReply.decode(await reader.readexactly(HelloReply.SIZE))
            if reply.status is not HelloStatus.OK:
                raise ClusterInfoError(
                    f"member {reply.member_id:x} at {url} (cluster {reply.cluster_id:x})"
                    f" refused the request: {reply.status.name}"
                )
            frames = FrameReader(max_bytes + INFO_STATUS.size)
            while True:
                data = await reader.read(65536)
                if not data:
                    raise ClusterInfoError(f"{url} closed the connection without answering")
                received = frames.feed(data)
                if received:
                    break
    except TimeoutError:
        raise ClusterInfoError(f"no cluster info from {url} within {timeout_s}s") from None
    except (OSError, CodecError, asyncio.IncompleteReadError) as exc:
        raise ClusterInfoError(f"asking {url} for cluster info failed: {exc}") from None
    finally:
        if writer is not None:
            writer.close()
    kind, payload = received[0]
    if kind != FrameKind.INFO or len(payload) < INFO_STATUS.size:
        raise ClusterInfoError(f"{url} answered with an unexpected frame of kind {kind}")
    if payload[0] != 0:
        raise ClusterInfoError(f"the member at {url} has no cluster info to give")
    return bytes(payload[INFO_STATUS.size :])
