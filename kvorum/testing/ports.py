"""Free loopback TCP ports for test clusters.

A port is found by binding a socket to port 0 on 127.0.0.1 and closing it again; the kernel
picks one nobody holds at that moment. Between the close and the member's own bind another
process may take it, so a launcher must be ready to retry with fresh ports (``Cluster`` does).
Ports handed out by this process are remembered so that two allocations in one process never
return the same port twice, even when the kernel would reuse a freshly closed one.
"""

from __future__ import annotations

import socket
import threading

__all__ = ["LOOPBACK", "free_ports"]

LOOPBACK = "127.0.0.1"
# Each call asks for a handful of ports (two per member); a bound keeps a typo from looping.
PORTS_PER_CALL_MAX = 64
# Attempts per wanted port before giving up: the kernel can return a port we already handed
# out, which we skip.
ATTEMPTS_PER_PORT = 50
# Remember this many recently handed-out ports; older ones may be reused by the kernel safely
# because the clusters that held them are long gone (or bound them already).
RECENT_PORTS_MAX = 4096

_lock = threading.Lock()
_recent: dict[int, None] = {}  # insertion-ordered set of ports handed out by this process


def free_ports(count: int) -> list[int]:
    """Return ``count`` distinct loopback ports that were free a moment ago."""
    if not 0 < count <= PORTS_PER_CALL_MAX:
        raise ValueError(f"count must be in 1..{PORTS_PER_CALL_MAX}, got {count}")
    ports: list[int] = []
    with _lock:
        for _ in range(count * ATTEMPTS_PER_PORT):
            if len(ports) == count:
                break
            with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
                sock.bind((LOOPBACK, 0))
                port: int = sock.getsockname()[1]
            if port in _recent:
                continue
            _recent[port] = None
            ports.append(port)
        while len(_recent) > RECENT_PORTS_MAX:
            del _recent[next(iter(_recent))]
    if len(ports) != count:
        raise RuntimeError(f"could not find {count} distinct free ports on {LOOPBACK}")
    return ports
