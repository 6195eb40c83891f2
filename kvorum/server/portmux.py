"""EXPERIMENT, not wired into the member: one client port for gRPC and HTTP/1.1, as etcd has.

etcd serves gRPC and its HTTP endpoints (JSON gateway, /health, /metrics) on the same client
port (cmux). grpc-python owns its listening sockets, so it cannot share a port with an HTTP/1.1
server. This front listener accepts on the public port, peeks at the first bytes of each
connection -- an HTTP/2 client (gRPC) opens with the preface ``HTTP2_PREFACE`` -- and splices
the connection to an internal gRPC port or an internal HTTP port. The bytes move
kernel-side with ``os.splice`` through a pipe, one thread per direction (splice blocks and
releases the GIL), so Python touches no payload.

Its cost is what the experiment measures (``python -m kvorum.server.portmux`` in front of a
member, then the put benchmark through it and around it; figures in docs/observability.md).
Limits: ``MAX_CONNECTIONS`` connections, each with two threads; the peek waits at most
``PEEK_TIMEOUT_S`` for the first bytes.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import socket
import threading
from collections.abc import Sequence

__all__ = ["HTTP2_PREFACE", "PortMux", "is_http2"]

HTTP2_PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
PEEK_TIMEOUT_S = 5.0
MAX_CONNECTIONS = 256
SPLICE_BYTES = 256 * 1024
BACKLOG = 128


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


class PortMux:
    """Accept on ``listen``; gRPC (HTTP/2) to ``grpc_target``, anything else to ``http_target``."""

    def __init__(
        self,
        listen: tuple[str, int],
        grpc_target: tuple[str, int],
        http_target: tuple[str, int],
    ) -> None:
        self._grpc = grpc_target
        self._http = http_target
        self._sock = socket.create_server(listen, backlog=BACKLOG, reuse_port=False)
        self.address: tuple[str, int] = self._sock.getsockname()[:2]
        self._slots = threading.BoundedSemaphore(MAX_CONNECTIONS)
        self._closed = threading.Event()
        self._acceptor = threading.Thread(target=self._accept_loop, name="portmux", daemon=True)

    def start(self) -> PortMux:
        self._acceptor.start()
        return self

    def close(self) -> None:
        self._closed.set()
        with contextlib.suppress(OSError):
            self._sock.shutdown(socket.SHUT_RDWR)
        self._sock.close()
        self._acceptor.join(timeout=5)

    def _accept_loop(self) -> None:
        while not self._closed.is_set():
            try:
                conn, _ = self._sock.accept()
            except OSError:
                return
            if not self._slots.acquire(blocking=False):
                conn.close()  # over the connection bound: refused
                continue
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn: socket.socket) -> None:
        upstream: socket.socket | None = None
        try:
            conn.settimeout(PEEK_TIMEOUT_S)
            first = conn.recv(len(HTTP2_PREFACE), socket.MSG_PEEK)
            conn.settimeout(None)
            target = self._grpc if is_http2(first) else self._http
            upstream = socket.create_connection(target)
            for s in (conn, upstream):
                s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            back = threading.Thread(target=_pump, args=(upstream, conn), daemon=True)
            back.start()
            _pump(conn, upstream)
            back.join()
        except OSError:
            pass
        finally:
            conn.close()
            if upstream is not None:
                upstream.close()
            self._slots.release()


def _address(text: str) -> tuple[str, int]:
    host, _, port = text.rpartition(":")
    return host, int(port)


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m kvorum.server.portmux")
    p.add_argument("--listen", required=True, help="host:port to accept on")
    p.add_argument("--grpc", required=True, help="host:port of the member's gRPC listener")
    p.add_argument("--http", required=True, help="host:port of the member's HTTP listener")
    args = p.parse_args(argv)
    mux = PortMux(_address(args.listen), _address(args.grpc), _address(args.http)).start()
    print(f"portmux on {mux.address[0]}:{mux.address[1]}", flush=True)
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        pass
    finally:
        mux.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
