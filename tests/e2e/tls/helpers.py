"""Certificates made at test time (trustme), TLS probes of a port, and etcdctl without the
launcher's certificates -- shared by the TLS end-to-end tests."""

from __future__ import annotations

import os
import shutil
import socket
import ssl
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import pytest
import trustme
from cryptography import x509

from kvorum.testing import ETCD, ETCDCTL, ClusterTLS, CtlResult

PROBE_TIMEOUT_S = 5.0
OPEN_AFTER_HANDSHAKE_S = 1.0
"""A connection still open this long after its handshake counts as accepted (a refused client
certificate is answered with an alert at once; kvorum's peer listener waits 2 s for a hello)."""
REFUSED_CTL_TIMEOUT_S = 30.0
# etcdctl retries a refused handshake until its dial timeout, then prints the gRPC error.
REFUSED_CTL_FLAGS = ("--dial-timeout=2s", "--command-timeout=3s")


@dataclass(frozen=True, slots=True)
class Certs:
    """Paths of one test's certificates: the cluster CA and its leaves, and a rogue CA's."""

    directory: Path
    ca: trustme.CA
    rogue_ca: trustme.CA

    def path(self, name: str) -> str:
        return str(self.directory / name)

    def cluster_tls(self, **options: bool) -> ClusterTLS:
        return ClusterTLS(
            ca_file=self.path("ca.pem"),
            cert_file=self.path("server.pem"),
            key_file=self.path("server-key.pem"),
            client_cert_file=self.path("client.pem"),
            client_key_file=self.path("client-key.pem"),
            **options,
        )

    def rotate_server_cert(self) -> int:
        """Issue a new server certificate and move it over the old files (key first, then the
        certificate, each by rename, as a certificate manager does); return its serial."""
        leaf = self.ca.issue_cert("127.0.0.1", "localhost", common_name="infra")
        write_leaf(leaf, self.directory, "server")
        return serial(leaf)


def write_leaf(leaf: trustme.LeafCert, directory: Path, stem: str) -> None:
    for data, name in ((leaf.private_key_pem.bytes(), f"{stem}-key.pem"),
                       (leaf.cert_chain_pems[0].bytes(), f"{stem}.pem")):  # fmt: skip
        staging = directory / f".{name}.tmp"
        staging.write_bytes(data)
        os.replace(staging, directory / name)


def serial(leaf: trustme.LeafCert) -> int:
    return x509.load_pem_x509_certificate(leaf.cert_chain_pems[0].bytes()).serial_number


def make_certs(directory: Path) -> Certs:
    """ca.pem; server.pem (127.0.0.1, localhost; CN infra) for every member; client.pem (CN
    root) for etcdctl; other.pem (CN other) and elsewhere.pem (for 10.9.9.9 only) from the
    same CA; rogue-ca.pem and rogue.pem (127.0.0.1) from a CA the cluster does not trust."""
    directory.mkdir(parents=True, exist_ok=True)
    ca, rogue_ca = trustme.CA(), trustme.CA()
    ca.cert_pem.write_to_path(str(directory / "ca.pem"))
    rogue_ca.cert_pem.write_to_path(str(directory / "rogue-ca.pem"))
    write_leaf(ca.issue_cert("127.0.0.1", "localhost", common_name="infra"), directory, "server")
    write_leaf(ca.issue_cert("client", common_name="root"), directory, "client")
    write_leaf(ca.issue_cert("127.0.0.1", common_name="other"), directory, "other")
    write_leaf(ca.issue_cert("10.9.9.9", common_name="infra"), directory, "elsewhere")
    write_leaf(rogue_ca.issue_cert("127.0.0.1", common_name="rogue"), directory, "rogue")
    return Certs(directory, ca, rogue_ca)


def require_tools(*tools: str) -> None:
    for tool in (*tools, ETCDCTL):
        if shutil.which(tool) is None:
            pytest.skip(f"{tool} is not installed")


def require_etcd() -> None:
    require_tools(ETCD)


@dataclass(frozen=True, slots=True)
class Probe:
    """One TLS connection attempt: accepted or not, and the certificate the server showed."""

    accepted: bool
    server_serial: int | None
    cipher: str | None
    error: str


def probe(
    port: int,
    certs: Certs,
    *,
    cert: str | None = "client",
    ciphers: str | None = None,
    alpn: Sequence[str] = (),
) -> Probe:
    """Connect to 127.0.0.1:port with TLS, presenting ``<cert>.pem`` (None: no certificate),
    verifying the server against the cluster CA. ``ciphers`` limits the client to those
    (OpenSSL names) over TLS 1.2."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.load_verify_locations(certs.path("ca.pem"))
    if cert is not None:
        ctx.load_cert_chain(certs.path(f"{cert}.pem"), certs.path(f"{cert}-key.pem"))
    if ciphers is not None:
        ctx.maximum_version = ssl.TLSVersion.TLSv1_2
        ctx.set_ciphers(ciphers)
    if alpn:
        ctx.set_alpn_protocols(list(alpn))
    server_serial: int | None = None
    cipher: str | None = None
    try:
        with (
            socket.create_connection(("127.0.0.1", port), timeout=PROBE_TIMEOUT_S) as raw,
            ctx.wrap_socket(raw, server_hostname="127.0.0.1") as conn,
        ):
            der = conn.getpeercert(binary_form=True)
            if der is not None:
                server_serial = x509.load_der_x509_certificate(der).serial_number
            negotiated = conn.cipher()
            cipher = negotiated[0] if negotiated else None
            # TLS 1.3: the server judges the client certificate after the client's side of
            # the handshake; a refusal arrives as an alert on the first read.
            conn.settimeout(OPEN_AFTER_HANDSHAKE_S)
            try:
                data = conn.recv(1)
            except TimeoutError:
                return Probe(True, server_serial, cipher, "")
            if not data:
                return Probe(False, server_serial, cipher, "closed after the handshake")
            return Probe(True, server_serial, cipher, "")
    except (OSError, ssl.SSLError) as exc:
        return Probe(False, server_serial, cipher, str(exc))


def bare_etcdctl(endpoint: str, *args: str) -> CtlResult:
    """The real etcdctl with only the flags given (no certificate unless ``args`` name one)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("ETCDCTL_")}
    env["ETCDCTL_API"] = "3"
    done = subprocess.run(
        [ETCDCTL, f"--endpoints={endpoint}", *REFUSED_CTL_FLAGS, *args],
        capture_output=True,
        stdin=subprocess.DEVNULL,
        env=env,
        timeout=REFUSED_CTL_TIMEOUT_S,
        check=False,
    )
    return CtlResult(done.returncode, done.stdout.decode(), done.stderr.decode())


def last_line(text: str) -> str:
    lines = [line for line in text.splitlines() if line.strip()]
    return lines[-1] if lines else ""
