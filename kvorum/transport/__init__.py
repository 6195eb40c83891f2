"""Peer transport: raft messages between kvorum members over TCP (asyncio, uvloop-ready).

``PeerTransport`` is the face; ``codec`` and ``wire`` are the pure encodings it speaks.
Wiring it to a raft node, as the server does::

    transport = PeerTransport(
        member_id, cluster_id, config.listen_peer_urls,
        on_message=node.step,                   # or queue for the Ready loop
        on_unreachable=node.report_unreachable,
        on_snapshot_status=node.report_snapshot,
    )
    await transport.start()
    for peer_id, urls in initial_members:
        transport.add_peer(peer_id, urls)
    ...
    transport.send(ready.messages)              # never blocks; drops are reported
"""

from kvorum.transport.codec import CodecError, decode_message, encode_message
from kvorum.transport.info import ClusterInfoError, fetch_cluster_info
from kvorum.transport.limits import TransportLimits
from kvorum.transport.outbound import PeerStats
from kvorum.transport.transport import PeerTransport

__all__ = [
    "ClusterInfoError",
    "CodecError",
    "PeerStats",
    "PeerTransport",
    "TransportLimits",
    "decode_message",
    "encode_message",
    "fetch_cluster_info",
]
