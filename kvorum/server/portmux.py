"""One client port for gRPC and HTTP/1.1, as etcd has (its ``cmux``).

etcd serves gRPC and its HTTP endpoints (JSON gateway, /health, /metrics, /version) on the same
client port. grpc-python owns its listening sockets and cannot share one with an HTTP/1.1
server, so the member listens on the public port here, peeks at the first bytes of each
connection -- an HTTP/2 client (gRPC) opens with the preface ``HTTP2_PREFACE`` -- and then:

- gRPC: the connection is spliced to the gRPC server's internal listener (127.0.0.1, an
  ephemeral port). The bytes move kernel-side with ``os.splice`` through a pipe, one thread per
  direction (splice blocks and releases the GIL), so Python touches no payload.
- anything else (HTTP/1.x): the accepted socket itself is handed to ``on_http``, so HTTP costs
  no extra hop.

The member runs the mux in a child process (``MuxProcess``; this file run as a script, stdlib
only): every spliced message wakes a splice thread, and in the member's own process each
wake-up would contend for the GIL with the event loop -- measured, that added a third or more
to the member's CPU per request, against a few per cent in a process of its own. The member
binds the public port itself (so a taken port fails its start) and passes the listening socket
to the child; the child passes every HTTP connection back over a unix socket pair (SCM_RIGHTS),
and the member's HTTP handler adopts it. The child ends when that socket pair closes, so a
member killed with SIGKILL takes its mux with it.

The cost, measured with the put benchmark, is in docs/observability.md. Only plain-HTTP client
URLs are multiplexed: a TLS port would need the TLS session terminated here before the first
bytes could be read, so https URLs stay gRPC-only, bound by the gRPC server itself.

Limits: ``MAX_GRPC_CONNECTIONS`` spliced connections (two threads each; more are refused);
``MAX_PENDING_CONNECTIONS`` connections not yet told apart, each waited on for at most
``PEEK_TIMEOUT_S`` (more are refused).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Sequence

__all__ = ["HTTP2_PREFACE", "PEEK_BYTES", "MuxProcess", "PortMux", "is_http2", "listen_socket"]

logger = logging.getLogger("kvorum.server.portmux")

HTTP2_PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
#: Enough to tell the preface ("PRI ") from every HTTP/1.x method ("POST", "PUT ", "GET ").
PEEK_BYTES = 4
PEEK_TIMEOUT_S = 5.0
PEEK_RETRY_S = 0.005
MAX_GRPC_CONNECTIONS = 1024
#: Connections whose first bytes are awaited at once (a thread each, at most PEEK_TIMEOUT_S).
MAX_PENDING_CONNECTIONS = 256
#: The child's threads only splice and peek: a small stack each (the default is 8 MiB).
THREAD_STACK_BYTES = 256 * 1024
SPLICE_BYTES = 256 * 1024
BACKLOG = 1024
#: After a failed accept (out of file descriptors): wait, then accept again.
ACCEPT_RETRY_S = 0.1

#: How long the child gets to end after SIGTERM before it is killed.
CHILD_STOP_TIMEOUT_S = 5.0

HttpHandoff = Callable[[socket.socket], None]


def listen_socket(host: str, port: int) -> socket.socket:
    """A listening TCP socket on host:port (OSError if it cannot be bound)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    return socket.create_server((host, port), family=family, backlog=BACKLOG)


def is_http2(first_bytes: bytes) -> bool:
    """Whether a connection's first bytes are (the start of) the HTTP/2 client preface."""
    n = min(len(first_bytes), len(HTTP2_PREFACE))
    return n > 0 and first_bytes[:n] == HTTP2_PREFACE[:n]


def _pump(src: socket.socket, dst: socket.socket) -> None:
    """Move bytes src -> dst through a pipe with splice until src ends; then half-close dst."""
    read_end, write_end = os.pipe()
    try:
        while True:
            moved = os.splice(src.fileno(), write_end, SPLICE_BYTES)
            if moved == 0:
                break
            while moved:
                moved -= os.splice(read_end, dst.fileno(), moved)
    except OSError:
        pass  # a reset on either side ends this direction
    finally:
        os.close(read_end)
        os.close(write_end)
        with contextlib.suppress(OSError):
            dst.shutdown(socket.SHUT_WR)


def _peek(conn: socket.socket) -> bytes | None:
    """The connection's first bytes, enough to tell HTTP/2 from HTTP/1.x; None if it closed
    or stayed silent (or ambiguous) for ``PEEK_TIMEOUT_S``."""
    deadline = time.monotonic() + PEEK_TIMEOUT_S
    try:
        while True:
            conn.settimeout(max(deadline - time.monotonic(), 0.001))
            # MSG_WAITALL does not hold with MSG_PEEK on Linux: a first segment shorter than
            # PEEK_BYTES comes back at once, so a prefix of the preface ("P") waits for more.
            first = conn.recv(PEEK_BYTES, socket.MSG_PEEK)
            if not first:
                return None
            if len(first) >= PEEK_BYTES or not is_http2(first):
                conn.settimeout(None)
                return first
            if time.monotonic() >= deadline:
                return None
            time.sleep(PEEK_RETRY_S)
    except OSError:
        return None


class PortMux:
    """Accept on ``listen``; gRPC (HTTP/2) spliced to ``grpc_target``, any other connection
    handed to ``on_http`` (called on a mux thread; it owns the socket from then on)."""

    def __init__(
        self,
        listener: socket.socket,
        grpc_target: tuple[str, int],
        on_http: HttpHandoff,
    ) -> None:
        self._grpc = grpc_target
        self._on_http = on_http
        self._sock = listener
        self.address: tuple[str, int] = self._sock.getsockname()[:2]
        self._slots = threading.BoundedSemaphore(MAX_GRPC_CONNECTIONS)
        self._pending = threading.BoundedSemaphore(MAX_PENDING_CONNECTIONS)
        self._closed = threading.Event()
        # Spliced connections still open, so that close() can end them.
        self._live: set[socket.socket] = set()
        self._live_lock = threading.Lock()
        self._acceptor = threading.Thread(target=self._accept_loop, name="portmux", daemon=True)

    def start(self) -> PortMux:
        self._acceptor.start()
        return self

    def close(self) -> None:
        """Stop accepting and end every spliced connection (call after the gRPC server
        stopped, so requests in flight had their grace)."""
        self._closed.set()
        with contextlib.suppress(OSError):
            self._sock.shutdown(socket.SHUT_RDWR)  # wakes the blocked accept()
        self._sock.close()
        self._acceptor.join(timeout=5)
        with self._live_lock:
            live = list(self._live)
        for conn in live:
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)

    def _accept_loop(self) -> None:
        while not self._closed.is_set():
            try:
                conn, _ = self._sock.accept()
            except OSError as exc:
                if self._closed.is_set():
                    return
                # EMFILE and the like: the listener stays, accepting resumes shortly.
                logger.warning("client port %s: accept failed: %s", self.address, exc)
                time.sleep(ACCEPT_RETRY_S)
                continue
            if not self._pending.acquire(blocking=False):
                conn.close()  # too many silent connections: refused
                continue
            threading.Thread(
                target=self._serve, args=(conn,), name="portmux-conn", daemon=True
            ).start()

    def _serve(self, conn: socket.socket) -> None:
        try:
            first = _peek(conn)
        finally:
            self._pending.release()
        if first is None:
            conn.close()
            return
        if not is_http2(first):
            try:
                self._on_http(conn)
            except Exception as exc:  # the loop is closing: the connection cannot be served
                logger.debug("HTTP hand-off failed: %s", exc)
                conn.close()
            return
        if not self._slots.acquire(blocking=False):
            conn.close()  # over the connection bound: refused
            return
        try:
            self._splice_to_grpc(conn)
        finally:
            self._slots.release()

    def _splice_to_grpc(self, conn: socket.socket) -> None:
        upstream: socket.socket | None = None
        with self._live_lock:
            self._live.add(conn)
        try:
            upstream = socket.create_connection(self._grpc, timeout=PEEK_TIMEOUT_S)
            upstream.settimeout(None)
            for s in (conn, upstream):
                s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            back = threading.Thread(target=_pump, args=(upstream, conn), daemon=True)
            back.start()
            _pump(conn, upstream)
            back.join()
        except OSError:
            pass
        finally:
            with self._live_lock:
                self._live.discard(conn)
            conn.close()
            if upstream is not None:
                upstream.close()


class MuxProcess:
    """The member's side of a mux in a child process: owns the listening socket and the
    child (by pid), and adopts the HTTP connections the child hands back, on the event loop."""

    def __init__(
        self, listener: socket.socket, grpc_target: tuple[str, int], on_http: HttpHandoff
    ) -> None:
        self.address: tuple[str, int] = listener.getsockname()[:2]
        self._listener = listener
        self._on_http = on_http
        self._closing = False
        #: Set when the child ended without being asked to: the client port is not served.
        self.failure: str | None = None
        self._ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        host, port = grpc_target
        command = [
            sys.executable,
            "-I",  # isolated: not this file's directory on sys.path (its logging.py)
            os.path.abspath(__file__),  # a script: the child imports the stdlib only
            "--listen-fd", str(listener.fileno()),
            "--handoff-fd", str(theirs.fileno()),
            "--grpc", f"{host}:{port}",
        ]  # fmt: skip
        try:
            self._child = subprocess.Popen(
                command, pass_fds=(listener.fileno(), theirs.fileno()), stdin=subprocess.DEVNULL
            )
        finally:
            theirs.close()
        self._ours.setblocking(False)
        self._loop = asyncio.get_running_loop()
        self._loop.add_reader(self._ours.fileno(), self._receive)

    @property
    def pid(self) -> int:
        return self._child.pid

    def _receive(self) -> None:
        """Adopt every connection the child passed (one marker byte per descriptor)."""
        for _ in range(64):  # bounded per wake-up; the reader fires again if more wait
            try:
                data, fds, _flags, _addr = socket.recv_fds(self._ours, 64, 64)
            except BlockingIOError:
                return
            except OSError as exc:
                data, fds = b"", []
                logger.debug("mux hand-off socket: %s", exc)
            for fd in fds:
                self._on_http(socket.socket(fileno=fd))
            if not data:
                self._loop.remove_reader(self._ours.fileno())
                if not self._closing:
                    self.failure = f"the client port mux (pid {self.pid}) ended"
                    logger.critical("%s: %s is not served", self.failure, self.address)
                return

    async def close(self) -> None:
        self._closing = True
        with contextlib.suppress(Exception):
            self._loop.remove_reader(self._ours.fileno())
        self._ours.close()  # the child sees its hand-off socket close and ends
        with contextlib.suppress(ProcessLookupError):
            self._child.send_signal(signal.SIGTERM)
        try:
            await asyncio.to_thread(self._child.wait, CHILD_STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            self._child.kill()
            await asyncio.to_thread(self._child.wait)
        self._listener.close()


def _send_to_parent(handoff: socket.socket, lock: threading.Lock) -> HttpHandoff:
    def send(conn: socket.socket) -> None:
        try:
            with lock:
                socket.send_fds(handoff, [b"h"], [conn.fileno()])
        finally:
            conn.close()  # the parent holds its own copy now

    return send


def _address(text: str) -> tuple[str, int]:
    host, _, port = text.rpartition(":")
    return host.strip("[]"), int(port)


def main(argv: Sequence[str] | None = None) -> int:
    """The child: serve the mux until the parent's end of the hand-off socket closes."""
    p = argparse.ArgumentParser(prog="portmux.py")
    p.add_argument("--listen-fd", type=int, required=True, help="a listening socket")
    p.add_argument("--handoff-fd", type=int, required=True, help="unix socket to the member")
    p.add_argument("--grpc", required=True, help="host:port of the member's gRPC listener")
    args = p.parse_args(argv)
    threading.stack_size(THREAD_STACK_BYTES)
    signal.signal(signal.SIGTERM, lambda *_: os._exit(0))
    # Ctrl-C reaches the whole process group: the member decides, and closing the hand-off
    # socket ends this process (were it to end first, the member would take it for a crash).
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    listener = socket.socket(fileno=args.listen_fd)
    handoff = socket.socket(fileno=args.handoff_fd)
    mux = PortMux(listener, _address(args.grpc), _send_to_parent(handoff, threading.Lock()))
    mux.start()
    # The member sends nothing: a read returns only when it closed its end (or died).
    with contextlib.suppress(OSError):
        while handoff.recv(1):
            pass
    os._exit(0)  # daemon splice threads and their connections end with the process


if __name__ == "__main__":
    raise SystemExit(main())
