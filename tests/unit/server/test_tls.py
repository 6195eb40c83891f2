"""kvorum.server.tls: flags to TLS material, etcd's errors, peer contexts, gRPC credentials, reload.

Certificates are made at test time with trustme (no key is ever committed). Peer handshakes run
over real loopback sockets; the gRPC credentials serve a real gRPC server.
"""

from __future__ import annotations

import asyncio
import datetime
import logging
import os
import socket
import ssl
import stat
from concurrent import futures
from pathlib import Path

import grpc
import pytest
import trustme
import uvloop
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from kvorum.config import ServerConfig, load_config
from kvorum.raft.types import Message, MessageType
from kvorum.server import tls
from kvorum.transport import PeerTransport, TransportLimits

HANDSHAKE_TIMEOUT_S = 5.0


# --- certificates -------------------------------------------------------------------------


def write_pair(cert: trustme.LeafCert, directory: Path, stem: str) -> tuple[str, str]:
    """Write ``cert`` as <stem>.pem / <stem>-key.pem by rename (a new inode, as rotation does)."""
    cert_path, key_path = directory / f"{stem}.pem", directory / f"{stem}-key.pem"
    for data, path in ((cert.cert_chain_pems[0].bytes(), cert_path),
                       (cert.private_key_pem.bytes(), key_path)):  # fmt: skip
        staging = path.with_suffix(".tmp")
        staging.write_bytes(data)
        os.replace(staging, path)
    return str(cert_path), str(key_path)


def serial_of(cert: trustme.LeafCert) -> int:
    return x509.load_pem_x509_certificate(cert.cert_chain_pems[0].bytes()).serial_number


@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    return trustme.CA()


@pytest.fixture(scope="module")
def rogue_ca() -> trustme.CA:
    return trustme.CA()


@pytest.fixture
def files(tmp_path: Path, ca: trustme.CA) -> tls.TLSFiles:
    ca.cert_pem.write_to_path(str(tmp_path / "ca.pem"))
    cert, key = write_pair(ca.issue_cert("127.0.0.1", common_name="infra0"), tmp_path, "server")
    return tls.TLSFiles(cert, key, str(tmp_path / "ca.pem"), client_cert_auth=True)


def client_context(ca: trustme.CA, leaf: trustme.LeafCert | None) -> ssl.SSLContext:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ca.configure_trust(ctx)
    if leaf is not None:
        leaf.configure_cert(ctx)
    return ctx


# --- peer handshakes over loopback ----------------------------------------------------------


async def _exchange(
    server_ctx: ssl.SSLContext, client_ctx: ssl.SSLContext
) -> tuple[bool, int | None, int | None]:
    """Connect and exchange one byte: (accepted, server cert serial, client cert serial seen).

    With TLS 1.3 a refused client certificate only shows on the first read, so the client
    counts as accepted only once the server's byte arrives.
    """
    seen_client: list[int] = []

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        der = writer.get_extra_info("ssl_object").getpeercert(binary_form=True)
        if der:
            seen_client.append(x509.load_der_x509_certificate(der).serial_number)
        try:
            await reader.readexactly(1)
            writer.write(b"k")
            await writer.drain()
        except (OSError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.close()

    server = await asyncio.start_server(serve, "127.0.0.1", 0, ssl=server_ctx)
    port = server.sockets[0].getsockname()[1]
    served: int | None = None
    accepted = False
    try:
        async with asyncio.timeout(HANDSHAKE_TIMEOUT_S):
            reader, writer = await asyncio.open_connection("127.0.0.1", port, ssl=client_ctx)
            der = writer.get_extra_info("ssl_object").getpeercert(binary_form=True)
            served = x509.load_der_x509_certificate(der).serial_number
            writer.write(b"x")
            accepted = await reader.read(1) == b"k"
            writer.close()
    except (OSError, asyncio.IncompleteReadError):
        accepted = False
    finally:
        server.close()
        await server.wait_closed()
    return accepted, served, seen_client[0] if seen_client else None


def exchange(
    server_ctx: ssl.SSLContext, client_ctx: ssl.SSLContext
) -> tuple[bool, int | None, int | None]:
    return asyncio.run(_exchange(server_ctx, client_ctx))


def test_members_of_the_cluster_ca_talk_others_are_refused(
    files: tls.TLSFiles, ca: trustme.CA, rogue_ca: trustme.CA
) -> None:
    peer = tls.PeerTLS(files)
    accepted, _, client_serial = exchange(peer.server_context, peer.client_context)
    assert accepted and client_serial is not None  # the dialling side presented its cert
    # A certificate from another CA, and no certificate at all, never get past the handshake.
    rogue = rogue_ca.issue_cert("127.0.0.1")
    assert exchange(peer.server_context, client_context(ca, rogue))[0] is False
    assert exchange(peer.server_context, client_context(ca, None))[0] is False
    # And the dialling side checks the member it reaches against the cluster CA.
    rogue_server = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    rogue.configure_cert(rogue_server)
    assert exchange(rogue_server, peer.client_context)[0] is False


def test_without_peer_client_cert_auth_any_client_is_served(
    files: tls.TLSFiles, ca: trustme.CA
) -> None:
    peer = tls.PeerTLS(tls.TLSFiles(files.cert_file, files.key_file, files.trusted_ca_file))
    assert exchange(peer.server_context, client_context(ca, None))[0] is True


def test_peer_certificate_reload_on_file_change(
    files: tls.TLSFiles, ca: trustme.CA, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    peer = tls.PeerTLS(files)
    first_serial = exchange(peer.server_context, peer.client_context)[1]
    assert first_serial is not None
    new = ca.issue_cert("127.0.0.1", common_name="infra0")
    # Half-way through a rotation the key does not match the certificate yet: the old pair
    # stays in force, and the next handshake tries again.
    write_pair(new, tmp_path, "staging")
    os.replace(tmp_path / "staging.pem", files.cert_file)
    with caplog.at_level(logging.WARNING, logger="kvorum.server.tls"):
        for _ in range(2):
            assert exchange(peer.server_context, peer.client_context)[:2] == (True, first_serial)
    assert peer.reloads == 0
    # Said once, not at every handshake while the files stay half-replaced.
    assert [r.getMessage()[:44] for r in caplog.records] == [
        "peer certificate files changed but cannot be"
    ]
    os.replace(tmp_path / "staging-key.pem", files.key_file)
    accepted, served, _ = exchange(peer.server_context, peer.client_context)
    # The very handshake that noticed the change is served the new certificate; the dialling
    # context was reloaded in place, so the next dial presents the new certificate too.
    assert (accepted, served) == (True, serial_of(new))
    assert peer.reloads == 1
    assert exchange(peer.server_context, peer.client_context) == (
        True,
        serial_of(new),
        serial_of(new),
    )
    assert peer.maybe_reload() is False  # unchanged files: nothing to do


def test_cipher_suites_decide_the_peer_cipher(files: tls.TLSFiles) -> None:
    suites = tls.openssl_cipher_names(["TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256"])
    peer = tls.PeerTLS(files, cipher_suites=suites)
    assert exchange(peer.server_context, peer.client_context)[0]

    async def negotiated() -> tuple[str, str, int] | None:
        server = await asyncio.start_server(
            lambda r, w: w.close(), "127.0.0.1", 0, ssl=peer.server_context
        )
        port = server.sockets[0].getsockname()[1]
        _, writer = await asyncio.open_connection("127.0.0.1", port, ssl=peer.client_context)
        cipher: tuple[str, str, int] | None = writer.get_extra_info("cipher")
        writer.close()
        server.close()
        await server.wait_closed()
        return cipher

    assert asyncio.run(negotiated()) == ("ECDHE-ECDSA-AES128-GCM-SHA256", "TLSv1.2", 128)
    # A client offering only suites outside the list is refused.
    other = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    other.check_hostname = False
    other.verify_mode = ssl.CERT_NONE
    other.maximum_version = ssl.TLSVersion.TLSv1_2
    other.set_ciphers("ECDHE-ECDSA-AES256-GCM-SHA384")
    assert exchange(peer.server_context, other)[0] is False


def write_crl(ca: trustme.CA, revoked_serials: list[int], path: Path) -> None:
    """A PEM CRL signed by ``ca`` that revokes ``revoked_serials``."""
    key = serialization.load_pem_private_key(ca.private_key_pem.bytes(), password=None)
    assert isinstance(key, ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey)
    issuer = x509.load_pem_x509_certificate(ca.cert_pem.bytes()).subject
    now = datetime.datetime.now(datetime.UTC)
    builder = (
        x509.CertificateRevocationListBuilder()
        .issuer_name(issuer)
        .last_update(now - datetime.timedelta(minutes=1))
        .next_update(now + datetime.timedelta(days=1))
    )
    for number in revoked_serials:
        builder = builder.add_revoked_certificate(
            x509.RevokedCertificateBuilder().serial_number(number).revocation_date(now).build()
        )
    path.write_bytes(builder.sign(key, hashes.SHA256()).public_bytes(serialization.Encoding.PEM))


def test_peer_crl_refuses_a_revoked_member_and_is_reloaded(
    files: tls.TLSFiles, ca: trustme.CA, tmp_path: Path
) -> None:
    revoked, kept = ca.issue_cert("127.0.0.1"), ca.issue_cert("127.0.0.1")
    crl = tmp_path / "crl.pem"
    write_crl(ca, [serial_of(revoked)], crl)
    peer = tls.PeerTLS(
        tls.TLSFiles(
            files.cert_file, files.key_file, files.trusted_ca_file, True, crl_file=str(crl)
        )
    )
    assert exchange(peer.server_context, client_context(ca, kept))[0] is True
    assert exchange(peer.server_context, client_context(ca, revoked))[0] is False
    # A new CRL (written by rename) takes effect at the next handshake.
    write_crl(ca, [serial_of(kept)], tmp_path / "crl.tmp")
    os.replace(tmp_path / "crl.tmp", crl)
    assert exchange(peer.server_context, client_context(ca, kept))[0] is False
    assert exchange(peer.server_context, client_context(ca, revoked))[0] is True


def accepts(peer: tls.PeerTLS, cert: dict[str, object] | None, remote_ip: str) -> bool:
    return asyncio.run(peer.accepts(cert, remote_ip))


def test_peer_cert_allowed_cn(files: tls.TLSFiles) -> None:
    peer = tls.PeerTLS(files, allowed_cn="infra0")
    subject = ((("organizationName", "x"),), (("commonName", "infra0"),))
    assert accepts(peer, {"subject": subject}, "127.0.0.1")
    assert not accepts(peer, {"subject": ((("commonName", "intruder"),),)}, "127.0.0.1")
    assert not accepts(peer, None, "127.0.0.1")
    assert accepts(tls.PeerTLS(files), None, "127.0.0.1")  # no CN asked: the CA decides


def test_a_member_certificate_must_name_the_address_it_connects_from(files: tls.TLSFiles) -> None:
    # etcd's peer SAN check: the IP addresses named, else a DNS name resolving to the address.
    peer = tls.PeerTLS(files)
    here = {"subjectAltName": (("IP Address", "127.0.0.1"),)}
    elsewhere = {"subjectAltName": (("IP Address", "10.9.9.9"),)}
    by_name = {"subjectAltName": (("IP Address", "10.9.9.9"), ("DNS", "localhost"))}
    unresolvable = {"subjectAltName": (("DNS", "no-such-host.invalid"),)}
    assert accepts(peer, here, "127.0.0.1")
    assert accepts(peer, here, "::ffff:127.0.0.1")  # an IPv4 peer on a dual-stack socket
    assert not accepts(peer, elsewhere, "127.0.0.1")
    assert accepts(peer, by_name, "127.0.0.1")
    assert not accepts(peer, unresolvable, "127.0.0.1")
    assert accepts(peer, {"subject": ()}, "127.0.0.1")  # names no address: not checked
    skipping = tls.PeerTLS(files, skip_san_check=True)
    assert accepts(skipping, elsewhere, "127.0.0.1")


def test_peer_client_cert_auth_needs_a_ca(files: tls.TLSFiles) -> None:
    with pytest.raises(tls.TLSConfigError, match="needs --peer-trusted-ca-file"):
        tls.PeerTLS(tls.TLSFiles(files.cert_file, files.key_file, "", client_cert_auth=True))


def test_unreadable_or_mismatched_pair_is_a_start_error(
    files: tls.TLSFiles, ca: trustme.CA, tmp_path: Path
) -> None:
    with pytest.raises(tls.TLSConfigError, match="cannot load the peer key pair"):
        tls.PeerTLS(tls.TLSFiles(str(tmp_path / "missing.pem"), files.key_file))
    _, other_key = write_pair(ca.issue_cert("127.0.0.1"), tmp_path, "other")
    with pytest.raises(tls.TLSConfigError, match="cannot load the key pair"):
        tls.ClientTLS(tls.TLSFiles(files.cert_file, other_key))


# --- cipher names ---------------------------------------------------------------------------


def test_go_cipher_names_map_to_openssl_and_unknown_is_etcds_error() -> None:
    assert tls.openssl_cipher_names(
        ["TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256", "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305"]
    ) == ["ECDHE-RSA-AES128-GCM-SHA256", "ECDHE-ECDSA-CHACHA20-POLY1305"]
    with pytest.raises(tls.TLSConfigError) as err:
        tls.openssl_cipher_names(["TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256", "FOO"])
    assert str(err.value) == 'unexpected TLS cipher suite "FOO"'


def test_tls13_names_are_taken_as_etcd_takes_them(files: tls.TLSFiles) -> None:
    # etcd 3.4.23 accepts Go's TLS 1.3 names; Go ignores them in its TLS 1.2 list.
    names = ["TLS_AES_128_GCM_SHA256", "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256"]
    assert tls.openssl_cipher_names(names) == ["ECDHE-ECDSA-CHACHA20-POLY1305"]
    # Named beside TLS 1.2 suites, TLS 1.3 stays on; named alone, TLS 1.3 is all there is.
    both = tls.PeerTLS(files, cipher_suites=["ECDHE-ECDSA-AES128-GCM-SHA256"], tls13=True)
    assert both.server_context.maximum_version == ssl.TLSVersion.MAXIMUM_SUPPORTED
    # (No client certificate required here: a refusal below is the version's doing.)
    open_files = tls.TLSFiles(files.cert_file, files.key_file, files.trusted_ca_file)
    only = tls.PeerTLS(open_files, tls13=True)
    assert only.server_context.minimum_version == ssl.TLSVersion.TLSv1_3
    anonymous = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    anonymous.check_hostname = False
    anonymous.verify_mode = ssl.CERT_NONE
    assert exchange(only.server_context, anonymous)[0] is True
    anonymous.maximum_version = ssl.TLSVersion.TLSv1_2
    assert exchange(only.server_context, anonymous)[0] is False


def test_every_modern_mapped_name_is_known_to_openssl() -> None:
    # RC4 and 3DES are gone from OpenSSL 3's default build; every other name must resolve.
    for go_name, openssl_name in tls.GO_CIPHER_SUITES.items():
        if "RC4" in go_name or "3DES" in go_name:
            continue
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.set_ciphers(openssl_name)  # raises SSLError for a name OpenSSL does not know
        assert any(c["name"] == openssl_name for c in ctx.get_ciphers()), go_name


# --- flags ------------------------------------------------------------------------------------


def config(*flags: str, data_dir: Path) -> ServerConfig:
    return load_config(["--data-dir", str(data_dir), *flags], {})


def test_https_without_a_certificate_is_etcds_error(tmp_path: Path) -> None:
    client = config(
        "--listen-client-urls", "https://127.0.0.1:2379",
        "--advertise-client-urls", "https://127.0.0.1:2379",
        data_dir=tmp_path,
    )  # fmt: skip
    with pytest.raises(tls.TLSConfigError) as err:
        tls.build(client)
    assert str(err.value) == (
        "TLS key/cert (--cert-file, --key-file) must be provided for client url "
        "https://127.0.0.1:2379 with HTTPS scheme"
    )
    peer = config(
        "--listen-peer-urls", "https://127.0.0.1:2380",
        "--initial-advertise-peer-urls", "https://127.0.0.1:2380",
        "--initial-cluster", "default=https://127.0.0.1:2380",
        data_dir=tmp_path,
    )  # fmt: skip
    with pytest.raises(tls.TLSConfigError) as err:
        tls.build(peer)
    assert str(err.value) == (
        "cannot listen on TLS for 127.0.0.1:2380: KeyFile and CertFile are not presented"
    )


def test_flags_without_tls_build_nothing(tmp_path: Path) -> None:
    assert tls.build(config(data_dir=tmp_path)) == (None, None)


def test_unsupported_flags_are_refused_not_ignored(tmp_path: Path, files: tls.TLSFiles) -> None:
    with pytest.raises(tls.TLSConfigError, match="--client-crl-file is not supported"):
        tls.build(config("--client-crl-file", files.cert_file, data_dir=tmp_path))


def test_client_flags_make_credentials_with_client_cert_auth(
    tmp_path: Path, files: tls.TLSFiles
) -> None:
    built = config(
        "--listen-client-urls", "https://127.0.0.1:2379",
        "--advertise-client-urls", "https://127.0.0.1:2379",
        "--cert-file", files.cert_file, "--key-file", files.key_file,
        "--trusted-ca-file", files.trusted_ca_file, "--client-cert-auth",
        data_dir=tmp_path,
    )  # fmt: skip
    client, peer = tls.build(built)
    assert peer is None
    assert client is not None and client.files == files


def test_auto_tls_makes_a_self_signed_pair_in_the_data_dir_and_keeps_it(tmp_path: Path) -> None:
    built = config(
        "--auto-tls", "--peer-auto-tls",
        "--listen-client-urls", "https://127.0.0.1:2379",
        "--advertise-client-urls", "https://127.0.0.1:2379",
        "--listen-peer-urls", "https://127.0.0.1:2380",
        "--initial-advertise-peer-urls", "https://127.0.0.1:2380",
        "--initial-cluster", "default=https://127.0.0.1:2380",
        data_dir=tmp_path / "d",
    )  # fmt: skip
    client, peer = tls.build(built)
    assert client is not None and peer is not None
    assert client.files.cert_file == str(tmp_path / "d" / "fixtures" / "client" / "cert.pem")
    assert peer.files.cert_file == str(tmp_path / "d" / "fixtures" / "peer" / "cert.pem")
    assert stat.S_IMODE(os.stat(peer.files.key_file).st_mode) == 0o600
    cert = x509.load_pem_x509_certificate(Path(peer.files.cert_file).read_bytes())
    sans = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert [str(ip) for ip in sans.get_values_for_type(x509.IPAddress)] == ["127.0.0.1"]
    assert cert.issuer == cert.subject  # self-signed, organization "etcd" as etcd's
    # Self-signed peers cannot be verified, so (as etcd) they are not: two members talk.
    assert exchange(peer.server_context, peer.client_context)[0] is True
    # A restart keeps the same certificate.
    again, _ = tls.build(built)
    assert again is not None
    assert Path(again.files.cert_file).read_bytes() == Path(client.files.cert_file).read_bytes()


# --- client link: gRPC credentials ------------------------------------------------------------


def _served_serial(port: int, ca: trustme.CA, leaf: trustme.LeafCert) -> int:
    ctx = client_context(ca, leaf)
    ctx.set_alpn_protocols(["h2"])
    with (
        socket.create_connection(("127.0.0.1", port), timeout=HANDSHAKE_TIMEOUT_S) as raw,
        ctx.wrap_socket(raw, server_hostname="127.0.0.1") as conn,
    ):
        der = conn.getpeercert(binary_form=True)
        assert der is not None
        return x509.load_der_x509_certificate(der).serial_number


def _channel_ready(port: int, ca: trustme.CA, leaf: trustme.LeafCert | None) -> bool:
    credentials = grpc.ssl_channel_credentials(
        root_certificates=ca.cert_pem.bytes(),
        private_key=leaf.private_key_pem.bytes() if leaf else None,
        certificate_chain=leaf.cert_chain_pems[0].bytes() if leaf else None,
    )
    with grpc.secure_channel(f"127.0.0.1:{port}", credentials) as channel:
        try:
            grpc.channel_ready_future(channel).result(timeout=2.0)
        except grpc.FutureTimeoutError:
            return False
        # With TLS 1.3 the server checks the client certificate after the client's side of
        # the handshake is done: a call is what shows whether the connection was kept.
        try:
            channel.unary_unary("/x.Y/Z")(b"", timeout=2.0)
        except grpc.RpcError as exc:
            return bool(exc.code() == grpc.StatusCode.UNIMPLEMENTED)
        return True


def test_grpc_credentials_require_a_client_cert_and_reload(
    files: tls.TLSFiles, ca: trustme.CA, rogue_ca: trustme.CA, tmp_path: Path
) -> None:
    client_tls = tls.ClientTLS(files)
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
    port = server.add_secure_port("127.0.0.1:0", client_tls.credentials)
    server.start()
    try:
        user = ca.issue_cert("user", common_name="root")
        assert _channel_ready(port, ca, user)
        assert not _channel_ready(port, ca, None)
        assert not _channel_ready(port, ca, rogue_ca.issue_cert("user"))
        first = _served_serial(port, ca, user)
        assert (
            first
            == x509.load_pem_x509_certificate(Path(files.cert_file).read_bytes()).serial_number
        )
        new = ca.issue_cert("127.0.0.1", common_name="infra0")
        write_pair(new, tmp_path, "staging")
        os.replace(tmp_path / "staging-key.pem", files.key_file)
        os.replace(tmp_path / "staging.pem", files.cert_file)
        assert _served_serial(port, ca, user) == serial_of(new)
        assert client_tls.reloads == 1
        assert _channel_ready(port, ca, user)
    finally:
        server.stop(0)


# --- the peer transport over TLS -------------------------------------------------------------


def test_peer_transport_over_tls_refuses_a_member_from_another_ca(
    files: tls.TLSFiles, rogue_ca: trustme.CA, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    rogue_ca.cert_pem.write_to_path(str(tmp_path / "rogue-ca.pem"))
    rogue_cert, rogue_key = write_pair(rogue_ca.issue_cert("127.0.0.1"), tmp_path, "rogue")
    rogue_files = tls.TLSFiles(rogue_cert, rogue_key, str(tmp_path / "rogue-ca.pem"), True)
    limits = TransportLimits(backoff_min_s=0.02, backoff_max_s=0.2, handshake_timeout_s=1.0)

    def transport(member_id: int, peer: tls.PeerTLS, inbox: list[Message]) -> PeerTransport:
        return PeerTransport(
            member_id,
            0xC1C1,
            ["https://127.0.0.1:0"],
            inbox.append,
            lambda _peer_id: None,
            lambda _peer_id, _ok: None,
            limits=limits,
            server_ssl=peer.server_context,
            client_ssl=peer.client_context,
        )

    async def main() -> None:
        inboxes: dict[int, list[Message]] = {1: [], 2: [], 3: []}
        a = transport(1, tls.PeerTLS(files), inboxes[1])
        b = transport(2, tls.PeerTLS(files), inboxes[2])
        rogue = transport(3, tls.PeerTLS(rogue_files), inboxes[3])
        for t in (a, b, rogue):
            await t.start()
        try:
            b.add_peer(1, a.bound_urls)
            rogue.add_peer(1, a.bound_urls)
            async with asyncio.timeout(10.0):
                while not inboxes[1]:
                    b.send([Message(MessageType.HEARTBEAT, to=1, frm=2, term=1)])
                    rogue.send([Message(MessageType.HEARTBEAT, to=1, frm=3, term=1)])
                    await asyncio.sleep(0.05)
                # Give the rogue as many more tries as the member needed, and some.
                for _ in range(20):
                    rogue.send([Message(MessageType.HEARTBEAT, to=1, frm=3, term=1)])
                    await asyncio.sleep(0.05)
        finally:
            for t in (a, b, rogue):
                await t.stop()
        assert {m.frm for m in inboxes[1]} == {2}

    with caplog.at_level(logging.WARNING, logger="kvorum.transport"):
        uvloop.run(main())
    # The refused side says nothing (asyncio ends a failed server handshake silently); the
    # rogue's own log says why it cannot reach the member.
    assert any("peer 1 is unreachable" in r.getMessage() for r in caplog.records)
