"""TLS on the client and peer links, from etcd's flags.

What it builds from a :class:`ServerConfig`:

- the client side (``--cert-file``, ``--key-file``, ``--trusted-ca-file``, ``--client-cert-auth``,
  ``--auto-tls``): gRPC server credentials for ``https://`` listen URLs, made with
  ``grpc.dynamic_ssl_server_credentials`` so that every new connection's handshake re-reads the
  certificate files once their mtime changes (etcd re-reads them on every handshake);
- the peer side (``--peer-*``): the two ``ssl.SSLContext`` the peer transport takes. The listening
  context hands each handshake to the freshest server context (rebuilt when the files change),
  and the dialling context reloads its certificate in place (it serves the next connections);
- ``--auto-tls`` / ``--peer-auto-tls``: a self-signed certificate in
  ``<data-dir>/fixtures/client`` and ``/peer``, as etcd makes it (kept across restarts);
- ``--cipher-suites``: etcd's (Go's) names mapped to OpenSSL's, for both links.

With ``--client-cert-auth`` the handshake itself refuses a connection without a certificate
signed by ``--trusted-ca-file``: no request reaches the servicers. (When auth is enabled, etcd
takes the certificate's common name as the user; that hook belongs to the auth layer, which
reads the peer identity from the gRPC context -- ``context.auth_context()["x509_common_name"]``.)
"""

from __future__ import annotations

import asyncio
import datetime
import ipaddress
import logging
import os
import ssl
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final
from urllib.parse import urlsplit

import grpc

from kvorum.config import ServerConfig

__all__ = [
    "GO_CIPHER_SUITES",
    "GO_TLS13_CIPHER_SUITES",
    "GRPC_CIPHER_SUITES_ENV",
    "ClientTLS",
    "PeerTLS",
    "TLSConfigError",
    "TLSFiles",
    "build",
    "check_listen_urls",
    "client_tls_files",
    "grpc_cipher_suites_env",
    "openssl_cipher_names",
    "peer_tls_files",
    "self_signed_cert",
]

logger = logging.getLogger("kvorum.server.tls")

GRPC_CIPHER_SUITES_ENV: Final = "GRPC_SSL_CIPHER_SUITES"
"""gRPC core reads its TLS 1.2 cipher list from this variable (a colon-separated OpenSSL list)."""

#: Go's TLS 1.2 cipher suite names, which etcd's ``--cipher-suites`` takes, and OpenSSL's names
#: for the same suites (the ``_SHA256`` ChaCha20 names are Go's later aliases; etcd 3.4.23
#: takes both).
GO_CIPHER_SUITES: Final[dict[str, str]] = {
    "TLS_RSA_WITH_RC4_128_SHA": "RC4-SHA",
    "TLS_RSA_WITH_3DES_EDE_CBC_SHA": "DES-CBC3-SHA",
    "TLS_RSA_WITH_AES_128_CBC_SHA": "AES128-SHA",
    "TLS_RSA_WITH_AES_256_CBC_SHA": "AES256-SHA",
    "TLS_RSA_WITH_AES_128_CBC_SHA256": "AES128-SHA256",
    "TLS_RSA_WITH_AES_128_GCM_SHA256": "AES128-GCM-SHA256",
    "TLS_RSA_WITH_AES_256_GCM_SHA384": "AES256-GCM-SHA384",
    "TLS_ECDHE_ECDSA_WITH_RC4_128_SHA": "ECDHE-ECDSA-RC4-SHA",
    "TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA": "ECDHE-ECDSA-AES128-SHA",
    "TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA": "ECDHE-ECDSA-AES256-SHA",
    "TLS_ECDHE_RSA_WITH_RC4_128_SHA": "ECDHE-RSA-RC4-SHA",
    "TLS_ECDHE_RSA_WITH_3DES_EDE_CBC_SHA": "ECDHE-RSA-DES-CBC3-SHA",
    "TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA": "ECDHE-RSA-AES128-SHA",
    "TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA": "ECDHE-RSA-AES256-SHA",
    "TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA256": "ECDHE-ECDSA-AES128-SHA256",
    "TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA256": "ECDHE-RSA-AES128-SHA256",
    "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256": "ECDHE-RSA-AES128-GCM-SHA256",
    "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256": "ECDHE-ECDSA-AES128-GCM-SHA256",
    "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384": "ECDHE-RSA-AES256-GCM-SHA384",
    "TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384": "ECDHE-ECDSA-AES256-GCM-SHA384",
    "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305": "ECDHE-RSA-CHACHA20-POLY1305",
    "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305": "ECDHE-ECDSA-CHACHA20-POLY1305",
    "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256": "ECDHE-RSA-CHACHA20-POLY1305",
    "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256": "ECDHE-ECDSA-CHACHA20-POLY1305",
}

#: TLS 1.3 suites: etcd 3.4.23 accepts their names, and Go ignores them in its list (TLS 1.3
#: suites are not configurable): naming any of them keeps TLS 1.3 on, naming only them
#: leaves nothing for TLS 1.2.
GO_TLS13_CIPHER_SUITES: Final = frozenset(
    {"TLS_AES_128_GCM_SHA256", "TLS_AES_256_GCM_SHA384", "TLS_CHACHA20_POLY1305_SHA256"}
)

SELF_SIGNED_VALIDITY: Final = datetime.timedelta(days=365)
"""etcd 3.4 makes its auto-TLS certificates valid for one year."""
SAN_LOOKUP_TIMEOUT_S: Final = 2.0
"""How long resolving one DNS name of a connecting member's certificate may take."""
_CERT_NAME: Final = "cert.pem"
_KEY_NAME: Final = "key.pem"


class TLSConfigError(ValueError):
    """The TLS flags cannot work together, or their files cannot be used; the text says why."""


@dataclass(frozen=True, slots=True)
class TLSFiles:
    """One link's TLS material: the certificate and key, the CA that signs the other side's.

    ``self_signed`` marks an auto-TLS certificate: nothing can verify it, so (as etcd) the
    member does not verify the certificates of the peers it dials either. ``crl_file`` (PEM)
    lists revoked certificates that the listening side refuses.
    """

    cert_file: str
    key_file: str
    trusted_ca_file: str = ""
    client_cert_auth: bool = False
    self_signed: bool = False
    crl_file: str = ""

    def paths(self) -> tuple[str, ...]:
        files = (self.cert_file, self.key_file, self.trusted_ca_file, self.crl_file)
        return tuple(p for p in files if p)


# --- flags -> files ------------------------------------------------------------------------


def openssl_cipher_names(go_names: Sequence[str]) -> list[str]:
    """OpenSSL's names for etcd's TLS 1.2 ``--cipher-suites``; an unknown name is etcd's error.

    TLS 1.3 names are accepted and left out (see ``GO_TLS13_CIPHER_SUITES``).
    """
    names = []
    for name in go_names:
        if name in GO_TLS13_CIPHER_SUITES:
            continue
        openssl_name = GO_CIPHER_SUITES.get(name)
        if openssl_name is None:
            raise TLSConfigError(f'unexpected TLS cipher suite "{name}"')
        names.append(openssl_name)
    return names


def _url_hosts(urls: Sequence[str]) -> list[str]:
    hosts: list[str] = []
    for url in urls:
        host = urlsplit(url).hostname
        if host and host not in hosts:
            hosts.append(host)
    return hosts


def client_tls_files(config: ServerConfig) -> TLSFiles | None:
    """The client link's TLS material, or None when no certificate is configured."""
    if config.cert_file or config.key_file:
        if config.auto_tls:
            logger.warning("ignoring --auto-tls: --cert-file and --key-file are given")
        return TLSFiles(
            config.cert_file, config.key_file, config.trusted_ca_file, config.client_cert_auth
        )
    if config.auto_tls:
        directory = Path(config.data_dir) / "fixtures" / "client"
        cert, key = self_signed_cert(directory, _url_hosts(config.listen_client_urls))
        return TLSFiles(str(cert), str(key), "", config.client_cert_auth, self_signed=True)
    return None


def peer_tls_files(config: ServerConfig) -> TLSFiles | None:
    """The peer link's TLS material, or None when no peer certificate is configured."""
    if config.peer_cert_file or config.peer_key_file:
        if config.peer_auto_tls:
            logger.warning("ignoring --peer-auto-tls: --peer-cert-file and --peer-key-file given")
        return TLSFiles(
            config.peer_cert_file,
            config.peer_key_file,
            config.peer_trusted_ca_file,
            config.peer_client_cert_auth,
            crl_file=config.peer_crl_file,
        )
    if config.peer_auto_tls:
        directory = Path(config.data_dir) / "fixtures" / "peer"
        cert, key = self_signed_cert(directory, _url_hosts(config.listen_peer_urls))
        return TLSFiles(str(cert), str(key), "", config.peer_client_cert_auth, self_signed=True)
    return None


def check_listen_urls(config: ServerConfig, client: TLSFiles | None, peer: TLSFiles | None) -> None:
    """etcd's start-up checks of TLS against the listen URLs, with etcd's error texts.

    ``https://`` without a certificate is refused; ``http://`` with one is served in plain text
    with a warning, as etcd does (the certificate applies to the https URLs only).
    """
    for url in config.listen_client_urls:
        scheme = urlsplit(url).scheme
        if scheme in ("https", "unixs") and client is None:
            raise TLSConfigError(
                f"TLS key/cert (--cert-file, --key-file) must be provided for client url {url} "
                "with HTTPS scheme"
            )
        if scheme in ("http", "unix") and client is not None:
            logger.warning(
                "the scheme of client url %s is HTTP while key/cert files are presented; "
                "ignored key/cert files for this url",
                url,
            )
            if client.client_cert_auth:
                logger.warning(
                    "the scheme of client url %s is HTTP while client cert auth "
                    "(--client-cert-auth) is enabled; ignored client cert auth for this url",
                    url,
                )
    for url in config.listen_peer_urls:
        parts = urlsplit(url)
        if parts.scheme == "https" and peer is None:
            raise TLSConfigError(
                f"cannot listen on TLS for {parts.netloc}: KeyFile and CertFile are not presented"
            )
        if parts.scheme == "http" and peer is not None:
            logger.warning(
                "the scheme of peer url %s is HTTP while peer key/cert files are presented; "
                "ignored peer key/cert files for this url",
                url,
            )
    unsupported = {
        "client-crl-file": config.client_crl_file,
        "client-cert-allowed-hostname": config.client_cert_allowed_hostname,
        "peer-cert-allowed-hostname": config.peer_cert_allowed_hostname,
    }
    for flag, value in unsupported.items():
        # Refused rather than ignored: an operator relying on it would get less security
        # than asked for without knowing.
        if value:
            raise TLSConfigError(f"--{flag} is not supported by kvorum yet")


# --- auto TLS ------------------------------------------------------------------------------


def self_signed_cert(
    directory: Path, hosts: Sequence[str], *, now: datetime.datetime | None = None
) -> tuple[Path, Path]:
    """``(cert, key)`` in ``directory``: kept if both exist, else a new self-signed pair.

    As etcd's ``SelfCert``: an ECDSA P-256 key, organization "etcd", the hosts as IP or DNS
    subject alternative names, valid for a year; the key file readable by the owner only.
    """
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    cert_path, key_path = directory / _CERT_NAME, directory / _KEY_NAME
    if cert_path.exists() and key_path.exists():
        return cert_path, key_path
    try:
        directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    except OSError as exc:
        raise TLSConfigError(f"cannot create auto TLS directory {directory}: {exc}") from None
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "etcd")])
    not_before = now if now is not None else datetime.datetime.now(datetime.UTC)
    alt_names: list[x509.GeneralName] = []
    for host in hosts:
        try:
            alt_names.append(x509.IPAddress(ipaddress.ip_address(host)))
        except ValueError:
            alt_names.append(x509.DNSName(host))
    builder = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(not_before + SELF_SIGNED_VALIDITY)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=True,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=False,
                crl_sign=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        # Both: a peer's certificate also identifies it when it dials the other members.
        .add_extension(
            x509.ExtendedKeyUsage(
                [ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]
            ),
            critical=False,
        )
    )
    if alt_names:
        builder = builder.add_extension(x509.SubjectAlternativeName(alt_names), critical=False)
    cert = builder.sign(key, hashes.SHA256())
    key_pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.TraditionalOpenSSL,
        serialization.NoEncryption(),
    )
    # The key never exists with wider permissions than 0600, not even for a moment.
    fd = os.open(key_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as key_out:
        key_out.write(key_pem)
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    logger.info("made a self-signed certificate %s for %s", cert_path, ",".join(hosts) or "-")
    return cert_path, key_path


# --- change detection ----------------------------------------------------------------------


_Stamp = tuple[tuple[int, int, int], ...]


def _stamp(paths: Sequence[str]) -> _Stamp:
    """What identifies the files' current contents: (mtime ns, size, inode) per file."""
    stamps = []
    for path in paths:
        st = os.stat(path)
        stamps.append((st.st_mtime_ns, st.st_size, st.st_ino))
    return tuple(stamps)


class _FileWatch:
    """Answers "did these files change since the last load?" with one stat per file.

    ``changed()`` is True until ``loaded()`` records the stamp of a load that succeeded, so a
    half-written replacement (a key that does not match the certificate yet) is retried at the
    next handshake instead of being given up on.
    """

    def __init__(self, paths: Sequence[str]) -> None:
        self._paths = tuple(paths)
        self._stamp = _stamp(self._paths)
        self._failed: _Stamp | None = None

    def current(self) -> _Stamp | None:
        """The files' stamp if it differs from the last load's; None if unchanged or unreadable."""
        try:
            stamp = _stamp(self._paths)
        except OSError:
            return None  # being replaced: the old material stays in force
        return None if stamp == self._stamp else stamp

    def loaded(self, stamp: _Stamp) -> None:
        self._stamp = stamp

    def first_failure(self, stamp: _Stamp) -> bool:
        """Record that loading ``stamp`` failed; True the first time (say it once, not on
        every handshake while the files stay broken)."""
        first = stamp != self._failed
        self._failed = stamp
        return first


def _read(path: str, what: str) -> bytes:
    try:
        return Path(path).read_bytes()
    except OSError as exc:
        raise TLSConfigError(f"cannot read {what} {path}: {exc.strerror or exc}") from None


def _check_pair(cert_file: str, key_file: str) -> None:
    """Raise TLSConfigError unless the key matches the certificate (OpenSSL checks it)."""
    probe = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    try:
        probe.load_cert_chain(cert_file, key_file)
    except (OSError, ssl.SSLError) as exc:
        raise TLSConfigError(
            f"cannot load the key pair {cert_file}, {key_file}: {exc.strerror or exc}"
        ) from None


# --- client link: gRPC ---------------------------------------------------------------------


class ClientTLS:
    """gRPC server credentials for the ``https://`` client URLs, reloaded on file change.

    ``--cipher-suites`` reach gRPC core through ``GRPC_SSL_CIPHER_SUITES`` (see
    :func:`grpc_cipher_suites_env`).
    """

    def __init__(self, files: TLSFiles) -> None:
        self.files = files
        self.reloads = 0
        initial = self._configuration()  # first: a missing file is a TLSConfigError
        self._watch = _FileWatch(files.paths())
        self._credentials = grpc.dynamic_ssl_server_credentials(
            initial,
            self._fetch,
            require_client_authentication=files.client_cert_auth,
        )

    @property
    def credentials(self) -> grpc.ServerCredentials:
        return self._credentials

    def _configuration(self) -> grpc.ServerCertificateConfiguration:
        files = self.files
        _check_pair(files.cert_file, files.key_file)
        key = _read(files.key_file, "key file")
        cert = _read(files.cert_file, "certificate file")
        roots = _read(files.trusted_ca_file, "trusted CA file") if files.trusted_ca_file else None
        if files.client_cert_auth and roots is None:
            raise TLSConfigError("--client-cert-auth needs --trusted-ca-file to verify clients")
        return grpc.ssl_server_certificate_configuration([(key, cert)], root_certificates=roots)

    def _fetch(self) -> grpc.ServerCertificateConfiguration | None:
        """Called by gRPC before each new connection's handshake: None keeps the current one."""
        stamp = self._watch.current()
        if stamp is None:
            return None
        try:
            configuration = self._configuration()
        except TLSConfigError as exc:
            if self._watch.first_failure(stamp):
                logger.warning("client certificate files changed but cannot be loaded: %s", exc)
            return None
        self._watch.loaded(stamp)
        self.reloads += 1
        logger.info("reloaded the client certificate %s", self.files.cert_file)
        return configuration


def grpc_cipher_suites_env(config: ServerConfig) -> str | None:
    """The ``GRPC_SSL_CIPHER_SUITES`` value ``--cipher-suites`` asks for; None if not given.

    gRPC core reads the variable once, when it initialises (at import): setting it later has
    no effect, so the process re-executes itself with it set (see ``process.run``).
    """
    names = openssl_cipher_names(config.cipher_suites)
    # Only TLS 1.3 names: nothing gRPC can restrict (it has no TLS 1.3 suite setting).
    return ":".join(names) if names else None


# --- peer link: ssl contexts ---------------------------------------------------------------


class PeerTLS:
    """The peer transport's ``server_context`` (listening) and ``client_context`` (dialling).

    ``cipher_suites`` are OpenSSL names of TLS 1.2 suites; when given, TLS 1.2 is the highest
    version offered (unless ``tls13`` -- TLS 1.3 suites were named too), so the operator's list
    is what is negotiated. ``tls13`` with no TLS 1.2 suite offers TLS 1.3 only, as Go does.
    ``allowed_cn`` (``--peer-cert-allowed-cn``) is checked by :meth:`accepts` after the
    handshake.
    """

    def __init__(
        self,
        files: TLSFiles,
        *,
        cipher_suites: Sequence[str] = (),
        tls13: bool = False,
        allowed_cn: str = "",
        skip_san_check: bool = False,
    ) -> None:
        self.files = files
        self.allowed_cn = allowed_cn
        self.skip_san_check = skip_san_check
        self._ciphers = tuple(cipher_suites)
        self._tls13 = tls13
        if files.client_cert_auth and not files.trusted_ca_file:
            raise TLSConfigError(
                "--peer-client-cert-auth needs --peer-trusted-ca-file to verify members"
            )
        self.reloads = 0
        # The listening context: its certificate is the one in force at start, and its SNI
        # callback (which OpenSSL calls on every handshake, with or without a server name)
        # moves each handshake onto the freshest context once the files have changed.
        self.server_context = self._new_server_context()
        self._reloaded_server: ssl.SSLContext | None = None
        self.server_context.sni_callback = self._on_handshake
        self.client_context = self._new_client_context()
        self._watch = _FileWatch(files.paths())

    def _restrict(self, ctx: ssl.SSLContext) -> None:
        ctx.minimum_version = ssl.TLSVersion.TLSv1_2
        if self._ciphers:
            try:
                ctx.set_ciphers(":".join(self._ciphers))
            except ssl.SSLError:
                raise TLSConfigError(
                    f"none of the cipher suites {', '.join(self._ciphers)} is available in "
                    f"this OpenSSL ({ssl.OPENSSL_VERSION})"
                ) from None
            if not self._tls13:
                ctx.maximum_version = ssl.TLSVersion.TLSv1_2
        elif self._tls13:
            ctx.minimum_version = ssl.TLSVersion.TLSv1_3

    def _load_pair(self, ctx: ssl.SSLContext) -> None:
        try:
            ctx.load_cert_chain(self.files.cert_file, self.files.key_file)
        except (OSError, ssl.SSLError) as exc:
            raise TLSConfigError(
                f"cannot load the peer key pair {self.files.cert_file}, {self.files.key_file}: "
                f"{getattr(exc, 'strerror', None) or exc}"
            ) from None

    def _load_ca(self, ctx: ssl.SSLContext) -> None:
        try:
            ctx.load_verify_locations(cafile=self.files.trusted_ca_file)
        except (OSError, ssl.SSLError) as exc:
            raise TLSConfigError(
                f"cannot load --peer-trusted-ca-file {self.files.trusted_ca_file}: {exc}"
            ) from None

    def _new_server_context(self) -> ssl.SSLContext:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self._restrict(ctx)
        self._load_pair(ctx)
        if self.files.client_cert_auth:
            # Only a member holding a certificate signed by the cluster CA gets past the
            # handshake: no raft message from anyone else is ever read.
            self._load_ca(ctx)
            ctx.verify_mode = ssl.CERT_REQUIRED
        if self.files.crl_file:
            # --peer-crl-file: a member whose certificate was revoked is refused at the
            # handshake (etcd checks the connecting member's certificate the same way).
            try:
                ctx.load_verify_locations(cafile=self.files.crl_file)
            except (OSError, ssl.SSLError) as exc:
                raise TLSConfigError(
                    f"cannot load --peer-crl-file {self.files.crl_file} (PEM): {exc}"
                ) from None
            ctx.verify_flags |= ssl.VERIFY_CRL_CHECK_LEAF
        return ctx

    def _new_client_context(self) -> ssl.SSLContext:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        self._restrict(ctx)
        self._load_pair(ctx)  # presented to members that require a client certificate
        if self.files.self_signed:
            # etcd's peer auto TLS: no CA can vouch for a self-signed peer, so it is not checked.
            ctx.check_hostname = False
            ctx.verify_mode = ssl.CERT_NONE
        elif self.files.trusted_ca_file:
            self._load_ca(ctx)
        else:
            ctx.load_default_certs()  # as Go: the system's roots when no CA is named
        return ctx

    def _on_handshake(self, conn: ssl.SSLObject, server_name: str | None, _: object) -> None:
        self.maybe_reload()
        if self._reloaded_server is not None:
            conn.context = self._reloaded_server

    def maybe_reload(self) -> bool:
        """Rebuild from the files if they changed since the last load; True if it did."""
        stamp = self._watch.current()
        if stamp is None:
            return False
        try:
            server = self._new_server_context()
            self._load_pair(self.client_context)  # in place: the next dials present it
        except TLSConfigError as exc:
            if self._watch.first_failure(stamp):
                logger.warning("peer certificate files changed but cannot be loaded: %s", exc)
            return False
        self._reloaded_server = server
        self._watch.loaded(stamp)
        self.reloads += 1
        logger.info("reloaded the peer certificate %s", self.files.cert_file)
        return True

    async def accepts(self, peer_cert: dict[str, Any] | None, remote_ip: str) -> bool:
        """Whether a member whose handshake succeeded may talk raft, as etcd decides.

        ``--peer-cert-allowed-cn``: its certificate has that common name. Then, unless
        ``--experimental-peer-skip-client-san-verification``, the certificate must name the
        address the connection comes from: one of its IP addresses, or else one of its DNS
        names resolving to it (a certificate naming neither is not checked, as in etcd).
        """
        if self.allowed_cn and self.allowed_cn not in _common_names(peer_cert):
            return False
        if self.skip_san_check or not peer_cert:
            return True
        return await _names_address(peer_cert, remote_ip)


async def _names_address(peer_cert: dict[str, Any], remote_ip: str) -> bool:
    sans = peer_cert.get("subjectAltName", ())
    ips = [value for kind, value in sans if kind == "IP Address"]
    hosts = [value for kind, value in sans if kind == "DNS"]
    try:
        remote = ipaddress.ip_address(remote_ip)
    except ValueError:
        return False
    if any(_same_ip(ip, remote) for ip in ips):
        return True
    if ips and not hosts:
        return False
    loop = asyncio.get_running_loop()
    for host in hosts:
        try:
            # Resolved off the event loop (getaddrinfo runs in the default executor).
            infos = await asyncio.wait_for(loop.getaddrinfo(host, None), SAN_LOOKUP_TIMEOUT_S)
        except (OSError, TimeoutError):
            continue
        if any(_same_ip(str(info[4][0]), remote) for info in infos):
            return True
    return not ips and not hosts


def _same_ip(text: str, remote: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    try:
        ip = ipaddress.ip_address(text.strip())
    except ValueError:
        return False
    if isinstance(remote, ipaddress.IPv6Address) and remote.ipv4_mapped is not None:
        remote = remote.ipv4_mapped
    return ip == remote


def _common_names(peer_cert: dict[str, Any] | None) -> list[str]:
    if not peer_cert:
        return []
    names: list[str] = []
    subject = peer_cert.get("subject", ())
    if isinstance(subject, tuple):
        for rdn in subject:
            for attribute in rdn:
                if attribute[0] == "commonName":
                    names.append(str(attribute[1]))
    return names


def build(config: ServerConfig) -> tuple[ClientTLS | None, PeerTLS | None]:
    """Client and peer TLS from the flags, checked as etcd checks them at start."""
    ciphers = openssl_cipher_names(config.cipher_suites)
    client_files = client_tls_files(config)
    peer_files = peer_tls_files(config)
    check_listen_urls(config, client_files, peer_files)
    for link, files in (("client", client_files), ("peer", peer_files)):
        if files is not None:
            # The line etcd logs at start, so an operator sees which files are in force.
            logger.info(
                "%s TLS: cert = %s, key = %s, trusted-ca = %s, client-cert-auth = %s, "
                "crl-file = %s",
                link,
                files.cert_file,
                files.key_file,
                files.trusted_ca_file,
                str(files.client_cert_auth).lower(),
                files.crl_file,
            )
    client = ClientTLS(client_files) if client_files is not None else None
    peer = None
    if peer_files is not None:
        peer = PeerTLS(
            peer_files,
            cipher_suites=ciphers,
            tls13=any(name in GO_TLS13_CIPHER_SUITES for name in config.cipher_suites),
            allowed_cn=config.peer_cert_allowed_cn,
            skip_san_check=config.experimental_peer_skip_client_san_verification,
        )
    return client, peer
