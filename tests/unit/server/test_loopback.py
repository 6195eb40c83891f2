"""Three RaftNodes over the real PeerTransport on 127.0.0.1, in one event loop."""

from __future__ import annotations

import asyncio
import logging
import random
from pathlib import Path

import pytest

from kvorum.datadir import DataDir
from kvorum.server import RaftNode, RaftNodeConfig, RaftStorage, StorageOptions, Wait
from kvorum.server.errors import ServerError
from kvorum.transport import PeerTransport, TransportLimits
from tests.unit.server.helpers import CLUSTER_ID, ELECTION_TICKS, HEARTBEAT_S, LogMachine, run

pytestmark = pytest.mark.timeout(60)

FAST = TransportLimits(backoff_min_s=0.02, backoff_max_s=0.2, handshake_timeout_s=1.0)


def test_three_members_over_loopback_sockets(tmp_path: Path) -> None:
    ids = [0x2001, 0x2002, 0x2003]

    async def main() -> None:
        nodes: list[RaftNode] = []
        machines: list[LogMachine] = []
        transports: list[PeerTransport] = []
        try:
            for member_id in ids:
                storage = RaftStorage.open_or_create(
                    DataDir(tmp_path / f"{member_id:x}"),
                    member_id,
                    CLUSTER_ID,
                    ids,
                    StorageOptions(segment_size_bytes=256 * 1024),
                )
                wait = Wait()
                machine = LogMachine(wait)
                config = RaftNodeConfig(
                    member_id=member_id,
                    heartbeat_interval_s=HEARTBEAT_S,
                    election_ticks=ELECTION_TICKS,
                    seed=member_id,
                )
                node = RaftNode(config, storage, machine, wait=wait)
                transport = PeerTransport(
                    member_id,
                    CLUSTER_ID,
                    ["http://127.0.0.1:0"],
                    node.receive,
                    node.report_unreachable,
                    node.report_snapshot,
                    limits=FAST,
                    rng=random.Random(member_id),
                    logger=logging.getLogger(f"kvorum.test.transport.{member_id:x}"),
                )
                await transport.start()
                nodes.append(node)
                machines.append(machine)
                transports.append(transport)
            for i, transport in enumerate(transports):
                for j, other in enumerate(transports):
                    if i != j:
                        transport.add_peer(ids[j], other.bound_urls)
            for node, transport in zip(nodes, transports, strict=True):
                await node.start(transport)

            leader_id = await nodes[0].wait_for_leader(timeout_s=10.0)
            assert leader_id in ids

            async def writer(t: int) -> None:
                for i in range(40):
                    for attempt in range(10):  # an election under load may cost a retry
                        node = nodes[(t + i + attempt) % 3]
                        try:
                            await node.propose(b"v%d-%d" % (t, i), timeout_s=3.0)
                            break
                        except ServerError:
                            await asyncio.sleep(0.05)

            await asyncio.gather(*(writer(t) for t in range(5)))
            follower = next(n for n in nodes if not n.is_leader)
            index = await follower.read_index(timeout_s=5.0)
            for node in nodes:
                await node.wait_applied(index, timeout_s=5.0)
            values = machines[0].values
            assert set(values) == {b"v%d-%d" % (t, i) for t in range(5) for i in range(40)}
            assert all(m.values[: len(values)] == values for m in machines)
        finally:
            for node in nodes:
                await node.stop()
            for transport in transports:
                await transport.stop()

    run(main)
