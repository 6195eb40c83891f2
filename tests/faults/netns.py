"""A throw-away network for one fault test: every member in its own network namespace.

Layout (all names carry a random tag, so parallel tests never share a device)::

    root namespace (test process, clients)
      client bridge  kf<tag>c  10.C.0.1/24 -- veth -- member i: client address 10.C.0.(i+2)
      peer bridges   kf<tag>b0, kf<tag>b1, kf<tag>b2 (no address)
                                          -- veth -- member i: peer address 10.P.0.(i+2)

Members talk raft over the peer bridges only and serve clients over the client bridge only.
So a partition moves members' peer veths onto different peer bridges: members on different
bridges cannot reach each other at all (frames go nowhere, connections hang as on a real
split), while the test's clients in the root namespace still reach every member -- which is
what lets a test ask a cut-off member for a write and see that it never acknowledges one.
Healing puts every peer veth back on bridge 0.

Needs root and ``ip`` (iproute2); `netns_unavailable_reason` says why a test must skip.
Every namespace and bridge made here is deleted in `close` (and at interpreter exit).
"""

from __future__ import annotations

import atexit
import contextlib
import secrets
import shutil
import subprocess
import threading
from collections.abc import Sequence

from kvorum.testing.cluster import MemberHost

IP = "ip"
IP_TIMEOUT_S = 10.0
# Groups a partition may have: one bridge per group.
PEER_BRIDGES_MAX = 3
_SUBNET_TRIES_MAX = 50

_live: set[MemberNetwork] = set()
_live_lock = threading.Lock()


def _ip(
    *args: str, netns: str | None = None, check: bool = True
) -> subprocess.CompletedProcess[str]:
    command = [IP, "netns", "exec", netns, IP, *args] if netns else [IP, *args]
    done = subprocess.run(
        command, capture_output=True, text=True, timeout=IP_TIMEOUT_S, check=False
    )
    if check and done.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} failed: {done.stderr.strip()}")
    return done


def netns_unavailable_reason() -> str | None:
    """None when namespaces, veths and bridges can be made here; else why not."""
    if shutil.which(IP) is None:
        return "iproute2's ip is not installed"
    probe = f"kfprobe{secrets.token_hex(3)}"
    try:
        made = _ip("netns", "add", probe, check=False)
        if made.returncode != 0:
            return f"ip netns add failed (not root?): {made.stderr.strip()}"
        veth = _ip(
            "link", "add", f"{probe}a", "type", "veth", "peer", "name", f"{probe}b", check=False
        )
        if veth.returncode != 0:
            return f"cannot create veth pairs: {veth.stderr.strip()}"
        _ip("link", "del", f"{probe}a", check=False)
        bridge = _ip("link", "add", f"{probe}r", "type", "bridge", check=False)
        if bridge.returncode != 0:
            return f"cannot create bridges: {bridge.stderr.strip()}"
        _ip("link", "del", f"{probe}r", check=False)
    finally:
        _ip("netns", "del", probe, check=False)
    return None


def _used_prefixes() -> set[str]:
    """The /24s (as ``a.b.c``) any address in the root namespace already uses."""
    out = _ip("-o", "-4", "addr", "show").stdout
    used = set()
    for line in out.splitlines():
        fields = line.split()
        if "inet" in fields:
            address = fields[fields.index("inet") + 1].split("/")[0]
            used.add(address.rsplit(".", 1)[0])
    return used


class MemberNetwork:
    """Namespaces, veths and bridges for ``size`` members; `hosts` feeds ``Cluster``."""

    def __init__(self, size: int) -> None:
        self.size = size
        self.tag = secrets.token_hex(2)
        self.namespaces = [f"kf{self.tag}m{i}" for i in range(size)]
        self.client_bridge = f"kf{self.tag}c"
        self.peer_bridges = [f"kf{self.tag}b{g}" for g in range(PEER_BRIDGES_MAX)]
        self._peer_host_veths = [f"kf{self.tag}p{i}h" for i in range(size)]
        self._made_links: list[str] = []
        self._made_namespaces: list[str] = []
        self.client_prefix, self.peer_prefix = self._pick_prefixes()
        self.groups: tuple[tuple[int, ...], ...] = (tuple(range(size)),)

    def _pick_prefixes(self) -> tuple[str, str]:
        used = _used_prefixes()
        # Random /24s in 10.128.0.0/9: unlikely to meet a real network, and checked anyway.
        for _ in range(_SUBNET_TRIES_MAX):
            a, b = 128 + secrets.randbelow(127), secrets.randbelow(256)
            client, peer = f"10.{a}.{b}", f"10.{a + 1}.{b}"
            if client not in used and peer not in used:
                return client, peer
        raise RuntimeError("no free 10.x.y.0/24 pair for a fault-test network")

    def client_host(self, index: int) -> str:
        return f"{self.client_prefix}.{index + 2}"

    def peer_host(self, index: int) -> str:
        return f"{self.peer_prefix}.{index + 2}"

    @property
    def hosts(self) -> list[MemberHost]:
        return [
            MemberHost(self.namespaces[i], self.client_host(i), self.peer_host(i))
            for i in range(self.size)
        ]

    # -- lifecycle ------------------------------------------------------------------------

    def __enter__(self) -> MemberNetwork:
        return self.create()

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def create(self) -> MemberNetwork:
        with _live_lock:
            _live.add(self)
        try:
            self._create()
        except BaseException:
            self.close()
            raise
        return self

    def _create(self) -> None:
        for bridge in (self.client_bridge, *self.peer_bridges):
            _ip("link", "add", bridge, "type", "bridge")
            self._made_links.append(bridge)
            _ip("link", "set", bridge, "up")
        _ip("addr", "add", f"{self.client_prefix}.1/24", "dev", self.client_bridge)
        for i, ns in enumerate(self.namespaces):
            _ip("netns", "add", ns)
            self._made_namespaces.append(ns)
            _ip("link", "set", "lo", "up", netns=ns)
            for kind, bridge, address in (
                ("c", self.client_bridge, self.client_host(i)),
                ("p", self.peer_bridges[0], self.peer_host(i)),
            ):
                host_end, member_end = f"kf{self.tag}{kind}{i}h", f"kf{self.tag}{kind}{i}n"
                _ip("link", "add", host_end, "type", "veth", "peer", "name", member_end)
                self._made_links.append(host_end)
                _ip("link", "set", member_end, "netns", ns)
                _ip("link", "set", host_end, "master", bridge)
                _ip("link", "set", host_end, "up")
                _ip("addr", "add", f"{address}/24", "dev", member_end, netns=ns)
                _ip("link", "set", member_end, "up", netns=ns)

    def close(self) -> None:
        """Delete every namespace and device made here (their veths go with them). Idempotent."""
        for ns in self._made_namespaces:
            _ip("netns", "del", ns, check=False)
        for link in self._made_links:
            # Already gone with its namespace's end, or a bridge: either way by name, ours only.
            _ip("link", "del", link, check=False)
        self._made_namespaces.clear()
        self._made_links.clear()
        with _live_lock:
            _live.discard(self)

    # -- faults ---------------------------------------------------------------------------

    def partition(self, groups: Sequence[Sequence[int]]) -> None:
        """Split the peer network: members in different groups no longer reach each other.

        Members left out of every group join the first. Clients still reach every member.
        """
        if len(groups) > PEER_BRIDGES_MAX:
            raise ValueError(f"at most {PEER_BRIDGES_MAX} groups, got {len(groups)}")
        bridge_of = {i: 0 for i in range(self.size)}
        for g, group in enumerate(groups):
            for i in group:
                bridge_of[i] = g
        for i, g in bridge_of.items():
            _ip("link", "set", self._peer_host_veths[i], "master", self.peer_bridges[g])
        self.groups = tuple(
            tuple(i for i in range(self.size) if bridge_of[i] == g)
            for g in range(PEER_BRIDGES_MAX)
            if any(bridge_of[i] == g for i in range(self.size))
        )

    def isolate(self, indices: Sequence[int]) -> None:
        """Cut ``indices`` off from the rest (they still reach each other)."""
        rest = [i for i in range(self.size) if i not in indices]
        self.partition([rest, list(indices)])

    def heal(self) -> None:
        self.partition([list(range(self.size))])


@atexit.register
def _close_leftovers() -> None:
    with _live_lock:
        leftovers = list(_live)
    for network in leftovers:
        with contextlib.suppress(Exception):
            network.close()


__all__ = ["MemberNetwork", "netns_unavailable_reason"]
