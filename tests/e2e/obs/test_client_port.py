"""The client port's mux as a process: gRPC and HTTP on one port, the mux a child of the member
that lives and dies with it, and ``--enable-grpc-gateway=false`` for a gRPC-only port."""

from __future__ import annotations

import os
import signal
import socket
import time
from collections.abc import Callable
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from kvorum.testing import Cluster, binary_for
from tests.e2e.obs.helpers import http_get

WITHIN_S = 15.0
POLL_S = 0.1


def _kvorum() -> tuple[str, ...]:
    binary = binary_for("kvorum")
    if not Path(binary[0]).exists():
        pytest.skip(f"{binary[0]} is not installed")
    return binary


def _children(pid: int) -> list[int]:
    """The pids of ``pid``'s child processes (from every thread's /proc children list)."""
    kids: list[int] = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            kids.extend(int(k) for k in (task / "children").read_text().split())
        except FileNotFoundError:
            continue
    return kids


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return False
    return state != "Z"


def _wait(what: str, condition: Callable[[], bool], within_s: float = WITHIN_S) -> None:
    deadline = time.monotonic() + within_s
    while not condition():
        if time.monotonic() >= deadline:
            raise AssertionError(f"{what}: not within {within_s} s")
        time.sleep(POLL_S)


def _listeners(port: int) -> set[int]:
    """The inodes of the sockets listening on TCP ``port`` (IPv4 or IPv6), per
    /proc/net/tcp{,6}. An inode names one socket for as long as it exists, unlike the port,
    which a test running beside this one may bind the moment it is free."""
    inodes: set[int] = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            fields = line.split()
            local, state, inode = fields[1], fields[3], int(fields[9])
            if state == "0A" and int(local.rsplit(":", 1)[1], 16) == port:  # 0A: LISTEN
                inodes.add(inode)
    return inodes


def _address(url: str) -> tuple[str, int]:
    parts = urlsplit(url)
    assert parts.hostname is not None and parts.port is not None
    return parts.hostname, parts.port


def test_mux_lives_and_dies_with_its_member(tmp_path: Path) -> None:
    with Cluster(_kvorum(), 1, base_dir=tmp_path) as c:
        url = c.endpoints[0]
        assert c.etcdctl("put", "k", "v", endpoint=0).stdout.strip() == "OK"
        assert http_get(url + "/health").body == '{"health":"true"}'
        member = c.member(0)
        [mux_pid] = _children(member.pid)
        listeners = _listeners(_address(url)[1])
        assert listeners

        # SIGKILL the member: its mux sees the hand-off socket close and ends; the port frees.
        c.kill(0)
        _wait("the mux ends with its member", lambda: not _alive(mux_pid))
        # The member's listening socket closes. Read from the kernel's socket table: binding
        # the port is no test (once free, the port may at once be the source port of another
        # test's outgoing connection), nor is connecting (a connect to a free port in the
        # ephemeral range can be a TCP self-connect, and succeed). Waited for: the mux's main
        # thread reads as exited while its other threads, one of them blocked in accept() on
        # that socket, are still being torn down on a loaded machine.
        port = _address(url)[1]
        _wait("the member's listening socket closes", lambda: not listeners & _listeners(port))

        # A mux that dies on its own stops the member (clients could no longer reach it).
        c.restart(0)
        [mux_pid] = _children(member.pid)
        os.kill(mux_pid, signal.SIGKILL)
        _wait("the member stops without its mux", lambda: member.returncode is not None)
        assert member.returncode == 1
        assert "client port mux" in member.log_tail()


def test_gateway_off_leaves_a_grpc_only_port(tmp_path: Path) -> None:
    flags = ("--enable-grpc-gateway=false",)
    with Cluster(_kvorum(), 1, base_dir=tmp_path, extra_flags=flags) as c:
        assert c.etcdctl("put", "k", "v", endpoint=0).stdout.strip() == "OK"
        assert _children(c.member(0).pid) == []
        # gRPC's own listener answers an HTTP/1.1 request with no HTTP/1.1 reply.
        with socket.create_connection(_address(c.endpoints[0]), timeout=5) as s:
            s.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
            reply = s.recv(64)
        assert not reply.startswith(b"HTTP/1.1 200")
