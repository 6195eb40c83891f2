"""The member's configuration: etcd 3.4's flags, ``ETCD_*`` variables and config file → one
frozen :class:`ServerConfig`, built in this one place.

Sources and precedence follow etcd 3.4 exactly (each rule was checked against the real binary):

* Command-line flags use Go's ``flag`` rules: ``--flag``, ``-flag``, ``--flag=v``, ``-flag=v`` and
  ``--flag v``; booleans take ``--flag`` or ``--flag=true|false`` but never a separate word;
  parsing stops at ``--`` or the first non-flag word; a flag given twice keeps the last value.
* ``ETCD_<FLAG_NAME>`` variables fill flags not given on the command line. Giving both the
  flag and its variable is refused (etcd exits on "conflicting environment variable"), and an
  ``ETCD_*`` variable that names no flag only earns a warning.
* ``--config-file`` (or ``ETCD_CONFIG_FILE``) switches to YAML keyed by flag name. etcd then
  IGNORES every other flag and every ``ETCD_*`` variable — they are still syntax-checked, but
  their values are dropped — and so does kvorum. YAML values must have the types etcd's JSON
  decoder wants: a bool for a bool, a number for a count, integer nanoseconds for a duration,
  a list for ``log-outputs``/``cipher-suites``, and a string (quoted if it looks like a
  number) for the rest. Unknown keys are ignored by etcd; kvorum ignores them too but records
  a warning naming each one, because a misspelt key silently doing nothing is a trap.

Errors carry the exit status etcd uses: 2 when Go's flag parser refuses a value (unknown flag,
malformed number, bad choice), 1 when the parsed values fail etcd's later checks ("error
verifying flags"), e.g. an election timeout under five heartbeats.

``verify_bootstrap`` holds the checks etcd makes only when a member starts without a WAL (the
name must be in ``--initial-cluster``, advertised peer URLs must match it, no URL twice); the
member runs them when it creates a fresh data directory.

This module is pure apart from reading the config file: the environment is passed in, and
warnings are returned in the config for the caller to log.
"""

from __future__ import annotations

import enum
import ipaddress
import math
import platform
import re
import sys
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from fractions import Fraction
from typing import Any, Final, Literal, cast
from urllib.parse import urlsplit

import yaml

from kvorum import __version__, ids

__all__ = [
    "DEFAULT_QUOTA_BACKEND_BYTES",
    "ETCD_API_VERSION",
    "EXIT_INVALID",
    "EXIT_USAGE",
    "FLAGS",
    "ConfigError",
    "FlagSpec",
    "GoValueError",
    "Invocation",
    "Kind",
    "ServerConfig",
    "help_text",
    "load_config",
    "parse_go_bool",
    "parse_go_duration_ns",
    "parse_go_int",
    "parse_go_uint",
    "parse_initial_cluster",
    "parse_invocation",
    "parse_url",
    "parse_url_list",
    "verify_bootstrap",
    "version_text",
]

ETCD_API_VERSION: Final = "3.4"
EXIT_USAGE: Final = 2  # Go's flag package: the command line itself is malformed
EXIT_INVALID: Final = 1  # etcd's "error verifying flags" and bootstrap failures
DEFAULT_QUOTA_BACKEND_BYTES: Final = 2 * 1024**3  # what --quota-backend-bytes=0 means
MAX_QUOTA_BACKEND_BYTES: Final = 8 * 1024**3  # etcd warns above this
MAX_ELECTION_TIMEOUT_MS: Final = 50_000  # etcd refuses longer election timeouts
DEFAULT_NAME: Final = "default"
ENV_PREFIX: Final = "ETCD_"


class ConfigError(Exception):
    """The configuration cannot be used; ``message`` is one line naming the flag or key."""

    def __init__(self, message: str, exit_code: int = EXIT_INVALID) -> None:
        super().__init__(message)
        self.message = message
        self.exit_code = exit_code


# --------------------------------------------------------------------------------------------
# Go value syntax. etcd reads flags with Go's ``flag`` and ``strconv`` packages, so kvorum
# accepts and refuses what they do: ``0x10`` and ``010`` (octal!) are integers, ``+5`` is
# valid for a signed flag only, ``T`` is a boolean but ``yes`` is not, ``1h30m`` is a
# duration but ``5`` is not. These functions raise GoValueError carrying only the reason.
# --------------------------------------------------------------------------------------------


class GoValueError(ValueError):
    """A value Go's parsers would refuse; ``str(err)`` is the reason, not naming the flag."""


_TRUE_WORDS = frozenset({"1", "t", "T", "TRUE", "true", "True"})
_FALSE_WORDS = frozenset({"0", "f", "F", "FALSE", "false", "False"})


def parse_go_bool(text: str) -> bool:
    """``strconv.ParseBool``: the twelve spellings Go accepts, nothing else."""
    if text in _TRUE_WORDS:
        return True
    if text in _FALSE_WORDS:
        return False
    raise GoValueError("parse error")


def _parse_go_integer(text: str, *, signed: bool, bits: int) -> int:
    """``strconv.ParseInt``/``ParseUint`` with base 0, as Go's flag package calls them."""
    body = text
    negative = False
    if signed and body[:1] in ("+", "-"):
        negative = body[0] == "-"
        body = body[1:]
    # Python's int() would strip whitespace and accept non-ASCII digits; Go accepts neither.
    if not body or not body.isascii() or any(c.isspace() or c in "+-" for c in body):
        raise GoValueError("parse error")
    try:
        if body[:2].lower() in ("0x", "0o", "0b"):
            magnitude = int(body, 0)
        elif len(body) > 1 and body[0] == "0":
            # Go's base-0 rule: a bare leading zero means octal (``010`` is eight).
            magnitude = int("0o" + body[1:], 0)
        else:
            magnitude = int(body, 10)
    except ValueError:
        raise GoValueError("parse error") from None
    value = -magnitude if negative else magnitude
    low, high = (-(1 << (bits - 1)), (1 << (bits - 1)) - 1) if signed else (0, (1 << bits) - 1)
    if not low <= value <= high:
        raise GoValueError("value out of range")
    return value


def parse_go_uint(text: str, bits: int = 64) -> int:
    """An unsigned flag value (``uint``, ``uint32``, ``uint64``)."""
    return _parse_go_integer(text, signed=False, bits=bits)


def parse_go_int(text: str, bits: int = 64) -> int:
    """A signed flag value (``int``, ``int64``)."""
    return _parse_go_integer(text, signed=True, bits=bits)


def parse_strict_atoi(text: str) -> int | None:
    """``strconv.Atoi``: decimal only, optional sign; ``None`` where Go returns an error."""
    if re.fullmatch(r"[+-]?[0-9]+", text) is None:
        return None
    return int(text, 10)


_NS_PER_UNIT = {
    "ns": 1,
    "us": 1_000,
    "\u00b5s": 1_000,  # micro sign
    "\u03bcs": 1_000,  # Greek small letter mu
    "ms": 1_000_000,
    "s": 1_000_000_000,
    "m": 60_000_000_000,
    "h": 3_600_000_000_000,
}
_DURATION_PART = re.compile(r"([0-9]*)(?:\.([0-9]*))?([^0-9.]*)")
_DURATION_NS_MAX = (1 << 63) - 1


def parse_go_duration_ns(text: str) -> int:
    """``time.ParseDuration`` in integer nanoseconds: ``300ms``, ``1.5h``, ``1h30m``, ``0``."""
    rest = text
    negative = False
    if rest[:1] in ("+", "-"):
        negative = rest[0] == "-"
        rest = rest[1:]
    if rest == "0":
        return 0
    if not rest:
        raise GoValueError(f"invalid duration {text!r}")
    total = Fraction(0)
    while rest:
        match = _DURATION_PART.match(rest)
        assert match is not None  # the pattern matches the empty string
        whole, frac, unit = match.group(1), match.group(2), match.group(3)
        if not whole and not frac:
            raise GoValueError(f"invalid duration {text!r}")
        if not unit:
            raise GoValueError(f"missing unit in duration {text!r}")
        if unit not in _NS_PER_UNIT:
            raise GoValueError(f"unknown unit {unit!r} in duration {text!r}")
        number = Fraction(int(whole or "0"))
        if frac:
            number += Fraction(int(frac), 10 ** len(frac))
        total += number * _NS_PER_UNIT[unit]
        rest = rest[match.end() :]
    nanoseconds = int(total)  # Go truncates fractional nanoseconds
    if nanoseconds > _DURATION_NS_MAX:
        raise GoValueError(f"invalid duration {text!r}")
    return -nanoseconds if negative else nanoseconds


def split_host_port(hostport: str) -> tuple[str, str]:
    """``net.SplitHostPort``: ``host:port`` or ``[v6]:port``; the port may be empty."""
    if hostport.startswith("["):
        end = hostport.find("]")
        if end < 0:
            raise GoValueError("missing ']' in address")
        host, after = hostport[1:end], hostport[end + 1 :]
        if not after.startswith(":"):
            raise GoValueError("missing port in address")
        port = after[1:]
    else:
        colons = hostport.count(":")
        if colons == 0:
            raise GoValueError("missing port in address")
        if colons > 1:
            raise GoValueError("too many colons in address")
        host, port = hostport.split(":")
    if "[" in host or "]" in host or "[" in port or "]" in port:
        raise GoValueError("unexpected bracket in address")
    return host, port


_URL_SCHEMES = ("http", "https", "unix", "unixs")


def parse_url(raw: str) -> str:
    """One URL as etcd's ``types.NewURLs`` validates it; returns the canonical string.

    Rules: a scheme of http, https, unix or unixs; an address of the form ``host:port``; no
    path. The canonical form lowercases the scheme (as Go's ``url.URL.String`` does), which
    matters because member ids hash these strings.
    """
    text = raw.strip()
    if any(ord(c) < 0x21 or ord(c) == 0x7F for c in text):
        raise GoValueError(f"invalid character in URL: {text}")
    try:
        parts = urlsplit(text)
    except ValueError as err:  # e.g. an unclosed "[" — Go's url.Parse refuses it too
        raise GoValueError(f'parse "{text}": {err}') from None
    scheme = parts.scheme.lower()
    if scheme not in _URL_SCHEMES:
        raise GoValueError(f"URL scheme must be http, https, unix, or unixs: {text}")
    if not text[len(scheme) + 1 :].startswith("//"):
        raise GoValueError(f'URL address does not have the form "host:port": {text}')
    hostport = parts.netloc.rpartition("@")[2]
    try:
        _, port = split_host_port(hostport)
    except GoValueError:
        raise GoValueError(f'URL address does not have the form "host:port": {text}') from None
    if not port.isdigit() and port != "":
        raise GoValueError(f"invalid port {port!r} in URL: {text}")
    if parts.path:
        raise GoValueError(f"URL must not contain a path: {text}")
    canonical = f"{scheme}://{parts.netloc}"
    if parts.query:
        canonical += "?" + parts.query
    if parts.fragment:
        canonical += "#" + parts.fragment
    return canonical


def parse_url_list(text: str) -> tuple[str, ...]:
    """A comma-separated URL list, validated, de-duplicated and sorted (etcd sorts them too)."""
    return tuple(sorted({parse_url(piece) for piece in text.split(",")}))


def _url_hostport(url: str) -> tuple[str, str]:
    return split_host_port(urlsplit(url).netloc.rpartition("@")[2])


def check_bind_url(url: str) -> None:
    """etcd binds only to literal IPs or ``localhost``, never to other host names."""
    if url.startswith(("unix://", "unixs://")):
        return
    host, _ = _url_hostport(url)
    if host == "localhost":
        return
    try:
        ipaddress.ip_address(host)
    except ValueError:
        raise GoValueError(f"expected IP in URL for binding ({url})") from None


def check_host_url(url: str) -> None:
    """An advertised URL must name a host, since peers and clients will dial it."""
    host, _ = _url_hostport(url)
    if host == "":
        raise GoValueError(f"unexpected empty host ({url})")


# --------------------------------------------------------------------------------------------
# The flag table: every flag etcd 3.4.23 defines, with its default as etcd prints it.
# --------------------------------------------------------------------------------------------


class Kind(enum.Enum):
    """How a flag's text becomes a value (each mirrors the Go flag type etcd registers)."""

    STRING = "string"
    BOOL = "bool"
    UINT = "uint"  # Go uint/uint32/uint64, width in FlagSpec.bits
    INT = "int"  # Go int/int64
    DURATION = "duration"  # Go time.Duration, kept as integer nanoseconds while parsing
    URLS = "urls"  # comma-separated URLs; an empty value keeps the previous list
    CHOICE = "choice"  # one of FlagSpec.choices
    STRINGS = "strings"  # comma-separated, order kept
    UNIQUE_STRINGS = "unique-strings"  # comma-separated set (empty pieces kept), sorted
    CORS = "cors"  # "*" or a URL list
    IGNORED = "ignored"  # etcd v2-era flags: accepted like a boolean and ignored


@dataclass(frozen=True, slots=True)
class FlagSpec:
    """One etcd flag: its name, type, default text, and where its value lands."""

    name: str
    kind: Kind
    default: str
    group: str
    help: str
    field: str | None  # the ServerConfig field; None for flags that only steer parsing
    choices: tuple[str, ...] = ()
    bits: int = 64
    in_file: bool = True  # a key of the --config-file YAML
    file_list: bool = False  # in YAML this is a list of strings, not one comma string
    hidden: bool = False  # accepted but not shown by --help, as in etcd

    @property
    def env_key(self) -> str:
        """The environment variable etcd maps to this flag."""
        return ENV_PREFIX + self.name.upper().replace("-", "_")

    @property
    def is_bool(self) -> bool:
        """Go's flag package lets these stand alone: ``--flag`` means ``--flag=true``."""
        return self.kind in (Kind.BOOL, Kind.IGNORED)


_M, _C, _S, _A, _P, _L, _X, _U, _V, _H = (
    "Member",
    "Clustering",
    "Security",
    "Auth",
    "Profiling and Monitoring",
    "Logging",
    "Experimental feature",
    "Unsafe feature",
    "v2 Proxy (to be deprecated in v4)",
    "hidden",
)


def _f(
    name: str,
    kind: Kind,
    default: str,
    group: str,
    help: str,
    field: str | None = "",
    **extra: Any,
) -> FlagSpec:
    """A table row; ``field`` defaults to the flag name in snake case (None: no field)."""
    resolved = name.replace("-", "_") if field == "" else field
    return FlagSpec(name, kind, default, group, help, resolved, **extra)


_IGNORED_NAMES = (
    "cluster-active-size",
    "cluster-remove-delay",
    "cluster-sync-interval",
    "config",
    "force",
    "max-result-buffer",
    "max-retry-attempts",
    "peer-heartbeat-interval",
    "peer-election-timeout",
    "retry-interval",
    "snapshot",
    "v",
    "vv",
)

# One-letter kind names keep the table below readable as a table.
B, S, U, N, D = Kind.BOOL, Kind.STRING, Kind.UINT, Kind.INT, Kind.DURATION

FLAGS: Final[tuple[FlagSpec, ...]] = (
    _f("config-file", S, "", _H, "YAML configuration file; other flags and ETCD_* variables "
       "are then ignored.", None, in_file=False),
    _f("version", B, "false", _H, "Print the version and exit.", None, in_file=False),
    # member
    _f("name", S, DEFAULT_NAME, _M, "Human-readable name of this member."),
    _f("data-dir", S, "", _M, "Directory holding this member's data (default '${name}.etcd')."),
    _f("wal-dir", S, "", _M, "Separate directory for the write-ahead log (default inside "
       "the data directory)."),
    _f("snapshot-count", U, "100000", _M, "Committed entries between snapshots to disk."),
    _f("heartbeat-interval", U, "100", _M, "Leader heartbeat period in milliseconds.",
       "heartbeat_interval_ms"),
    _f("election-timeout", U, "1000", _M, "Election timeout in milliseconds (at least five "
       "heartbeats).", "election_timeout_ms"),
    _f("initial-election-tick-advance", B, "true", _M, "Fast-forward election ticks at boot "
       "so the first election happens sooner."),
    _f("listen-peer-urls", Kind.URLS, "http://localhost:2380", _M, "URLs to listen on for "
       "traffic from other members."),
    _f("listen-client-urls", Kind.URLS, "http://localhost:2379", _M, "URLs to listen on for "
       "client traffic."),
    _f("max-snapshots", U, "5", _M, "Snapshot files to keep (0 keeps all)."),
    _f("max-wals", U, "5", _M, "WAL files to keep (0 keeps all)."),
    _f("quota-backend-bytes", N, "0", _M, "Backend size that raises the NOSPACE alarm (0 means "
       "2 GiB, negative disables the quota)."),
    _f("backend-batch-interval", D, "0", _M, "Longest wait before a backend transaction is "
       "committed.", "backend_batch_interval_s"),
    _f("backend-batch-limit", N, "0", _M, "Most operations per backend transaction."),
    _f("max-txn-ops", U, "128", _M, "Most operations allowed in one transaction."),
    _f("max-request-bytes", U, "1572864", _M, "Largest client request accepted, in bytes."),
    _f("max-concurrent-streams", U, "4294967295", _M, "Most concurrent gRPC streams per "
       "client connection.", bits=32),
    _f("grpc-keepalive-min-time", D, "5s", _M, "Shortest interval a client may ping at.",
       "grpc_keepalive_min_time_s"),
    _f("grpc-keepalive-interval", D, "2h", _M, "Period of server-to-client pings (0 "
       "disables).", "grpc_keepalive_interval_s"),
    _f("grpc-keepalive-timeout", D, "20s", _M, "Wait for a ping reply before closing the "
       "connection (0 disables).", "grpc_keepalive_timeout_s"),
    # clustering
    _f("initial-advertise-peer-urls", Kind.URLS, "http://localhost:2380", _C, "This member's "
       "peer URLs as the other members should dial them."),
    _f("initial-cluster", S, "default=http://localhost:2380", _C, "Bootstrap membership as "
       "name=peer-url,... (a name may repeat for several URLs)."),
    _f("initial-cluster-state", Kind.CHOICE, "new", _C, "'new' to bootstrap a cluster, "
       "'existing' to join one.", choices=("new", "existing")),
    _f("initial-cluster-token", S, "etcd-cluster", _C, "Token unique to this cluster; it is "
       "mixed into member and cluster ids."),
    _f("advertise-client-urls", Kind.URLS, "http://localhost:2379", _C, "This member's client "
       "URLs as clients should dial them."),
    _f("discovery", S, "", _C, "Discovery service URL used to bootstrap."),
    _f("discovery-fallback", Kind.CHOICE, "proxy", _C, "What to do when discovery fails: "
       "'exit' or 'proxy'.", choices=("exit", "proxy")),
    _f("discovery-proxy", S, "", _C, "HTTP proxy for the discovery service."),
    _f("discovery-srv", S, "", _C, "DNS SRV domain used to bootstrap."),
    _f("discovery-srv-name", S, "", _C, "Suffix of the DNS SRV name queried to bootstrap."),
    _f("strict-reconfig-check", B, "true", _C, "Refuse membership changes that would lose "
       "quorum."),
    _f("pre-vote", B, "false", _C, "Run a pre-vote phase before elections (etcd 3.4's "
       "default is off)."),
    _f("auto-compaction-retention", S, "0", _C, "History to keep when auto-compacting: hours "
       "or a duration like '30m' (periodic), or a revision count (revision); 0 disables."),
    _f("auto-compaction-mode", S, "periodic", _C, "'periodic' or 'revision': how to read "
       "--auto-compaction-retention."),
    _f("enable-v2", B, "false", _C, "Serve the v2 API (kvorum does not)."),
    # security
    _f("cert-file", S, "", _S, "Client TLS certificate file."),
    _f("key-file", S, "", _S, "Client TLS key file."),
    _f("client-cert-auth", B, "false", _S, "Require client certificates."),
    _f("client-crl-file", S, "", _S, "Client certificate revocation list.", in_file=False),
    _f("client-cert-allowed-hostname", S, "", _S, "Hostname client certificates must carry.",
       in_file=False),
    _f("trusted-ca-file", S, "", _S, "CA bundle for client certificates."),
    _f("auto-tls", B, "false", _S, "Serve clients with a generated self-signed certificate."),
    _f("peer-cert-file", S, "", _S, "Peer TLS certificate file."),
    _f("peer-key-file", S, "", _S, "Peer TLS key file."),
    _f("peer-client-cert-auth", B, "false", _S, "Require certificates from peers."),
    _f("peer-trusted-ca-file", S, "", _S, "CA bundle for peer certificates."),
    _f("peer-cert-allowed-cn", S, "", _S, "Common name peer certificates must carry.",
       in_file=False),
    _f("peer-cert-allowed-hostname", S, "", _S, "Hostname peer certificates must carry.",
       in_file=False),
    _f("peer-auto-tls", B, "false", _S, "Talk to peers with a generated self-signed "
       "certificate."),
    _f("peer-crl-file", S, "", _S, "Peer certificate revocation list.", in_file=False),
    _f("cipher-suites", Kind.STRINGS, "", _S, "Comma-separated TLS cipher suites (empty: the "
       "TLS library's defaults).", file_list=True),
    _f("cors", Kind.CORS, "*", _S, "Comma-separated allowed CORS origins ('*' allows all)."),
    _f("host-whitelist", Kind.UNIQUE_STRINGS, "*", _S, "Comma-separated Host header values "
       "accepted over plain HTTP ('*' allows all)."),
    # auth
    _f("auth-token", S, "simple", _A, "Auth token type and options: 'simple' or 'jwt,...'."),
    _f("bcrypt-cost", U, "10", _A, "bcrypt cost for password hashes (4 to 31)."),
    _f("auth-token-ttl", U, "300", _A, "Lifetime of a simple auth token in seconds.",
       "auth_token_ttl_s"),
    # profiling and monitoring
    _f("enable-pprof", B, "false", _P, "Serve runtime profiling data."),
    _f("metrics", S, "basic", _P, "Metrics detail: 'basic' or 'extensive'."),
    _f("listen-metrics-urls", Kind.URLS, "", _P, "Extra URLs serving /metrics and /health."),
    # logging
    _f("logger", S, "capnslog", _L, "'zap' for structured logs or 'capnslog' (etcd 3.4's "
       "default)."),
    _f("log-outputs", Kind.UNIQUE_STRINGS, "default", _L, "Where logs go: 'default', "
       "'stderr', 'stdout' or file paths, comma-separated.", file_list=True),
    _f("log-level", S, "info", _L, "One of debug, info, warn, error, panic, fatal."),
    _f("debug", B, "false", _L, "Deprecated: same as --log-level=debug."),
    _f("log-package-levels", S, "", _L, "Deprecated per-package levels, e.g. "
       "'etcdserver=DEBUG'."),
    _f("log-output", Kind.UNIQUE_STRINGS, "default", _L, "Deprecated spelling of "
       "--log-outputs.", "log_output_deprecated", file_list=True, hidden=True),
    # v2 proxy
    _f("proxy", Kind.CHOICE, "off", _V, "v2 proxy mode: 'off', 'readonly' or 'on'.",
       choices=("off", "readonly", "on")),
    _f("proxy-failure-wait", U, "5000", _V, "Milliseconds a failed endpoint is avoided.",
       "proxy_failure_wait_ms"),
    _f("proxy-refresh-interval", U, "30000", _V, "Milliseconds between endpoint refreshes.",
       "proxy_refresh_interval_ms"),
    _f("proxy-dial-timeout", U, "1000", _V, "Dial timeout in milliseconds.",
       "proxy_dial_timeout_ms"),
    _f("proxy-write-timeout", U, "5000", _V, "Write timeout in milliseconds.",
       "proxy_write_timeout_ms"),
    _f("proxy-read-timeout", U, "0", _V, "Read timeout in milliseconds (0: none).",
       "proxy_read_timeout_ms"),
    # experimental
    _f("experimental-initial-corrupt-check", B, "false", _X, "Check data for corruption "
       "before serving."),
    _f("experimental-corrupt-check-time", D, "0s", _X, "Period of cluster-wide corruption "
       "checks (0 disables).", "experimental_corrupt_check_time_s"),
    _f("experimental-enable-v2v3", S, "", _X, "Serve v2 through the v3 store under this "
       "prefix."),
    _f("experimental-backend-bbolt-freelist-type", S, "array", _X, "Backend freelist type "
       "('array' or 'map'; informational in kvorum)."),
    _f("experimental-enable-lease-checkpoint", B, "false", _X, "Persist remaining lease TTLs "
       "so that leader changes do not renew leases."),
    _f("experimental-enable-lease-checkpoint-persist", B, "false", _X, "Keep lease checkpoints "
       "across restarts.", hidden=True),
    _f("experimental-compaction-batch-limit", N, "1000", _X, "Most revisions deleted per "
       "compaction batch."),
    _f("experimental-peer-skip-client-san-verification", B, "false", _X, "Skip checking the "
       "SAN of peers' client certificates."),
    _f("experimental-watch-progress-notify-interval", D, "10m", _X, "Period of watch progress "
       "notifications.", "experimental_watch_progress_notify_interval_s"),
    _f("experimental-warning-apply-duration", D, "100ms", _X, "Log a warning when applying a "
       "request takes longer.", "experimental_warning_apply_duration_s"),
    # unsafe
    _f("force-new-cluster", B, "false", _U, "Restart as a new one-member cluster, keeping the "
       "data."),
    _f("unsafe-no-fsync", B, "false", _U, "Do not fsync (loses data on power loss).",
       hidden=True),
    _f("enable-grpc-gateway", B, "true", _H, "Serve the JSON gateway under /v3.", hidden=True),
    *(FlagSpec(n, Kind.IGNORED, "", _H, "Ignored etcd v2 flag.", None, in_file=False,
               hidden=True) for n in _IGNORED_NAMES),
)  # fmt: skip
del B, S, U, N, D  # table shorthands only

_BY_NAME: Final = {spec.name: spec for spec in FLAGS}
_SECURITY_SECTIONS: Final = {
    # YAML section → {section key → flag name}; the file spells TLS settings this way.
    "client-transport-security": {
        "cert-file": "cert-file",
        "key-file": "key-file",
        "client-cert-auth": "client-cert-auth",
        "trusted-ca-file": "trusted-ca-file",
        "auto-tls": "auto-tls",
    },
    "peer-transport-security": {
        "cert-file": "peer-cert-file",
        "key-file": "peer-key-file",
        "client-cert-auth": "peer-client-cert-auth",
        "trusted-ca-file": "peer-trusted-ca-file",
        "auto-tls": "peer-auto-tls",
    },
}
_LOG_LEVELS: Final = ("debug", "info", "warn", "error", "panic", "fatal")
_CAPNSLOG_OUTPUTS: Final = ("default", "stderr", "stdout")


class _Keep:
    """Marker: the value leaves the previous one in place (etcd's empty URL-list exception)."""


_KEEP: Final = _Keep()


def _parse_flag_text(spec: FlagSpec, text: str) -> object:
    """Turn one flag's text into its value, raising GoValueError as Go's flag.Value.Set does."""
    kind = spec.kind
    if kind is Kind.STRING:
        return text
    if kind is Kind.BOOL:
        return parse_go_bool(text)
    if kind is Kind.UINT:
        return parse_go_uint(text, spec.bits)
    if kind is Kind.INT:
        return parse_go_int(text, spec.bits)
    if kind is Kind.DURATION:
        return parse_go_duration_ns(text)
    if kind is Kind.URLS:
        return _KEEP if text == "" else parse_url_list(text)
    if kind is Kind.CHOICE:
        if text not in spec.choices:
            raise GoValueError(f"must be one of {', '.join(spec.choices)}")
        return text
    if kind is Kind.STRINGS:
        return () if text == "" else tuple(text.split(","))
    if kind is Kind.UNIQUE_STRINGS:
        return tuple(sorted(set(text.split(","))))  # Go keeps empty pieces too
    if kind is Kind.CORS:
        return ("*",) if text == "*" else parse_url_list(text)
    return None  # Kind.IGNORED


def _default_values() -> dict[str, object]:
    values: dict[str, object] = {}
    for spec in FLAGS:
        value = _parse_flag_text(spec, spec.default)
        values[spec.name] = () if value is _KEEP else value
    return values


# --------------------------------------------------------------------------------------------
# The frozen configuration.
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ServerConfig:
    """Everything a member needs to start, with etcd 3.4's defaults and units in the names.

    URL lists are canonical (lowercase scheme), de-duplicated and sorted, like etcd's.
    ``pre_vote`` records etcd 3.4's flag faithfully (default off); kvorum's raft core defaults
    pre-vote on, and the member decides how to combine the two.
    """

    # member
    name: str
    data_dir: str  # never empty: "${name}.etcd" when not given
    wal_dir: str  # empty: inside data_dir
    snapshot_count: int
    heartbeat_interval_ms: int
    election_timeout_ms: int
    initial_election_tick_advance: bool
    listen_peer_urls: tuple[str, ...]
    listen_client_urls: tuple[str, ...]
    max_snapshots: int
    max_wals: int
    quota_backend_bytes: int  # as given: 0 means the 2 GiB default, negative disables
    backend_batch_interval_s: float
    backend_batch_limit: int
    max_txn_ops: int
    max_request_bytes: int
    max_concurrent_streams: int
    grpc_keepalive_min_time_s: float
    grpc_keepalive_interval_s: float
    grpc_keepalive_timeout_s: float
    # clustering
    initial_advertise_peer_urls: tuple[str, ...]
    initial_cluster: str  # as given; see initial_cluster_members
    initial_cluster_state: Literal["new", "existing"]
    initial_cluster_token: str
    advertise_client_urls: tuple[str, ...]
    discovery: str
    discovery_fallback: Literal["exit", "proxy"]
    discovery_proxy: str
    discovery_srv: str
    discovery_srv_name: str
    strict_reconfig_check: bool
    pre_vote: bool
    auto_compaction_mode: Literal["periodic", "revision"]
    auto_compaction_retention: str  # as given
    auto_compaction_period_s: float  # periodic mode: the parsed retention; 0 disables
    auto_compaction_retention_revisions: int  # revision mode: revisions kept; 0 disables
    enable_v2: bool
    # security (parsed and stored; the TLS and auth layers act on them)
    cert_file: str
    key_file: str
    client_cert_auth: bool
    client_crl_file: str
    client_cert_allowed_hostname: str
    trusted_ca_file: str
    auto_tls: bool
    peer_cert_file: str
    peer_key_file: str
    peer_client_cert_auth: bool
    peer_trusted_ca_file: str
    peer_cert_allowed_cn: str
    peer_cert_allowed_hostname: str
    peer_auto_tls: bool
    peer_crl_file: str
    cipher_suites: tuple[str, ...]
    cors: tuple[str, ...]
    host_whitelist: tuple[str, ...]
    # auth
    auth_token: str
    bcrypt_cost: int
    auth_token_ttl_s: int
    # profiling and monitoring
    enable_pprof: bool
    metrics: str
    listen_metrics_urls: tuple[str, ...]
    # logging
    logger: Literal["zap", "capnslog"]
    log_outputs: tuple[str, ...]
    log_level: str
    debug: bool
    log_package_levels: str
    log_output_deprecated: tuple[str, ...]
    # v2 proxy (parsed only: kvorum is never a v2 proxy)
    proxy: Literal["off", "readonly", "on"]
    proxy_failure_wait_ms: int
    proxy_refresh_interval_ms: int
    proxy_dial_timeout_ms: int
    proxy_write_timeout_ms: int
    proxy_read_timeout_ms: int
    # experimental and unsafe
    experimental_initial_corrupt_check: bool
    experimental_corrupt_check_time_s: float
    experimental_enable_v2v3: str
    experimental_backend_bbolt_freelist_type: str
    experimental_enable_lease_checkpoint: bool
    experimental_enable_lease_checkpoint_persist: bool
    experimental_compaction_batch_limit: int
    experimental_peer_skip_client_san_verification: bool
    experimental_watch_progress_notify_interval_s: float
    experimental_warning_apply_duration_s: float
    force_new_cluster: bool
    unsafe_no_fsync: bool
    enable_grpc_gateway: bool
    # where it came from
    config_file: str  # empty when built from flags and environment
    explicit_flags: frozenset[str]  # flags the operator gave (by flag, variable or file key)
    warnings: tuple[str, ...]  # for the member to log at start (ignored keys, env, ...)

    @property
    def election_ticks(self) -> int:
        """Raft election timeout in heartbeat ticks (etcd: ElectionMs / TickMs, floored)."""
        return self.election_timeout_ms // self.heartbeat_interval_ms

    @property
    def is_new_cluster(self) -> bool:
        """True when bootstrapping a cluster rather than joining an existing one."""
        return self.initial_cluster_state == "new"

    @property
    def initial_cluster_members(self) -> tuple[tuple[str, tuple[str, ...]], ...]:
        """``--initial-cluster`` as ``((name, sorted peer urls), ...)`` in order of appearance.

        Raises ConfigError if it does not parse (etcd checks it only when bootstrapping).
        """
        return parse_initial_cluster(self.initial_cluster)

    @property
    def quota_backend_limit_bytes(self) -> int | None:
        """The backend quota in force: None when disabled by a negative flag."""
        if self.quota_backend_bytes < 0:
            return None
        return self.quota_backend_bytes or DEFAULT_QUOTA_BACKEND_BYTES

    def is_explicit(self, flag_name: str) -> bool:
        """Whether the operator chose this flag's value rather than inheriting etcd's default.

        Lets the member apply its own default where kvorum deliberately differs from etcd 3.4
        (``--pre-vote``: off in etcd 3.4, on in kvorum's raft core) without overriding a
        choice the operator made.
        """
        return flag_name in self.explicit_flags

    def initial_member_ids(self) -> dict[str, int]:
        """The member id etcd assigns each initial member (see kvorum.ids)."""
        return ids.initial_member_ids(self.initial_cluster_members, self.initial_cluster_token)

    def initial_cluster_id(self) -> int:
        """The cluster id of a cluster bootstrapped with these flags."""
        return ids.cluster_id(self.initial_member_ids().values())


@dataclass(frozen=True, slots=True)
class Invocation:
    """What the command line asks for: run with ``config``, or print help or the version."""

    action: Literal["run", "help", "version"]
    config: ServerConfig | None = None


# --------------------------------------------------------------------------------------------
# Command line (Go flag rules) and environment.
# --------------------------------------------------------------------------------------------


@dataclass(slots=True)
class _Parsed:
    """Mutable scratch state while reading flags; frozen into ServerConfig at the end."""

    values: dict[str, object]
    set_names: set[str]
    warnings: list[str]


def _set_value(parsed: _Parsed, spec: FlagSpec, value: object) -> None:
    if spec.kind is Kind.IGNORED:
        parsed.warnings.append(f'flag "--{spec.name}" is no longer supported - ignoring')
    elif value is not _KEEP:
        parsed.values[spec.name] = value
    parsed.set_names.add(spec.name)


def _parse_argv(argv: Sequence[str], parsed: _Parsed) -> tuple[bool, list[str]]:
    """Apply Go ``flag.FlagSet.Parse`` rules; returns (help requested, leftover words)."""
    args = list(argv)
    while args:
        word = args[0]
        if len(word) < 2 or word[0] != "-":
            break  # the first non-flag word ends flag parsing
        dashes = 2 if word[1] == "-" else 1
        if word == "--":
            args.pop(0)
            break
        name = word[dashes:]
        if not name or name[0] in "-=":
            raise ConfigError(f"bad flag syntax: {word}", EXIT_USAGE)
        args.pop(0)
        name, eq, inline = name.partition("=")
        spec = _BY_NAME.get(name)
        if spec is None:
            if name in ("h", "help"):
                return True, []
            raise ConfigError(f"flag provided but not defined: --{name}", EXIT_USAGE)
        if spec.is_bool:
            text = inline if eq else "true"
            if spec.kind is Kind.BOOL:
                try:
                    value = _parse_flag_text(spec, text)
                except GoValueError as err:
                    raise ConfigError(
                        f'invalid boolean value "{text}" for --{name}: {err}', EXIT_USAGE
                    ) from None
            else:
                value = None
        else:
            if eq:
                text = inline
            elif args:
                text = args.pop(0)  # Go takes the next word even if it starts with '-'
            else:
                raise ConfigError(f"flag needs an argument: --{name}", EXIT_USAGE)
            try:
                value = _parse_flag_text(spec, text)
            except GoValueError as err:
                raise ConfigError(
                    f'invalid value "{text}" for flag --{name}: {err}', EXIT_USAGE
                ) from None
        _set_value(parsed, spec, value)
    return False, args


def _apply_environment(parsed: _Parsed, environ: Mapping[str, str]) -> None:
    """Fill flags not on the command line from ``ETCD_*``, refusing flag/variable conflicts."""
    on_command_line = {_BY_NAME[name].env_key for name in parsed.set_names}
    for key in sorted(environ):
        if key in on_command_line:
            # etcd treats even an empty variable as a conflict here.
            raise ConfigError(
                f'conflicting environment variable "{key}" is shadowed by the command-line '
                "flag (unset the variable or drop the flag)"
            )
    used: set[str] = set()
    for spec in FLAGS:
        text = environ.get(spec.env_key, "")
        if spec.name in parsed.set_names or text == "":
            continue
        used.add(spec.env_key)
        try:
            value = _parse_flag_text(spec, text)
        except GoValueError as err:
            raise ConfigError(f'invalid value "{text}" for {spec.env_key}: {err}') from None
        _set_value(parsed, spec, value)
    for key in sorted(environ):
        if key.startswith(ENV_PREFIX) and key not in used and key not in on_command_line:
            parsed.warnings.append(f"unrecognized environment variable {key}={environ[key]}")


# --------------------------------------------------------------------------------------------
# Config file (YAML keyed by flag name).
# --------------------------------------------------------------------------------------------


def _yaml_type_name(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "a mapping"
    return type(value).__name__


def _yaml_integer(spec: FlagSpec, value: object) -> int:
    if isinstance(value, float) and value.is_integer():
        value = int(value)  # JSON has one number type: 100.0 is 100
    if isinstance(value, bool) or not isinstance(value, int):
        raise GoValueError(f"expected a whole number, got {_yaml_type_name(value)}")
    signed = spec.kind in (Kind.INT, Kind.DURATION)
    low, high = (
        (-(1 << (spec.bits - 1)), (1 << (spec.bits - 1)) - 1)
        if signed
        else (0, (1 << spec.bits) - 1)
    )
    if not low <= value <= high:
        raise GoValueError(f"number {value} out of range")
    return value


# etcd reads a config file in stages, and the stage decides which error is reported when
# several keys are wrong: (1) YAML syntax; (2) the JSON type of every key it decodes; (3) the
# URL lists, then cors, then host-whitelist; (4) the flag checks shared with the command line;
# (5) etcdmain's own keys — the v2 proxy settings and discovery-fallback. kvorum keeps that
# order so that it refuses a file with the same complaint etcd makes.
_FILE_PARSED_IN_ORDER: Final = (
    "listen-peer-urls",
    "listen-client-urls",
    "initial-advertise-peer-urls",
    "advertise-client-urls",
    "listen-metrics-urls",
    "cors",
    "host-whitelist",
)
_FILE_LATE_KEYS: Final = frozenset(
    {
        "proxy",
        "discovery-fallback",
        "proxy-failure-wait",
        "proxy-refresh-interval",
        "proxy-dial-timeout",
        "proxy-write-timeout",
        "proxy-read-timeout",
    }
)


def _yaml_typed(spec: FlagSpec, value: object) -> object:
    """Check one YAML value against the Go type etcd's JSON decoder gives that key."""
    if value is None:
        return _KEEP  # JSON null leaves a Go field at its default
    kind = spec.kind
    if kind is Kind.BOOL:
        if not isinstance(value, bool):
            raise GoValueError(f"expected true or false, got {_yaml_type_name(value)}")
        return value
    if kind in (Kind.UINT, Kind.INT, Kind.DURATION):
        # Durations are Go time.Duration in JSON: integer nanoseconds, not "5s".
        return _yaml_integer(spec, value)
    if spec.file_list:
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise GoValueError(f"expected a list of strings, got {_yaml_type_name(value)}")
        return tuple(cast("list[str]", value))
    if not isinstance(value, str):
        raise GoValueError(f"expected a string, got {_yaml_type_name(value)}")
    return value


_YAML_BOOL_TAG: Final = "tag:yaml.org,2002:bool"
_GO_NUMBER_TAG: Final = "tag:kvorum.invalid,2026:go-yaml-number"
_GO_YAML_TRUE: Final = frozenset(
    {"y", "Y", "yes", "Yes", "YES", "on", "On", "ON", "true", "True", "TRUE"}
)
_GO_YAML_FALSE: Final = frozenset(
    {"n", "N", "no", "No", "NO", "off", "Off", "OFF", "false", "False", "FALSE"}
)
_GO_YAML_FLOAT: Final = re.compile(r"[-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?")
_GO_YAML_SPECIAL_FLOATS: Final = {
    **{
        sign + word: float(sign + "inf")
        for sign in ("", "+", "-")
        for word in (".inf", ".Inf", ".INF")
    },
    ".nan": math.nan,
    ".NaN": math.nan,
    ".NAN": math.nan,
}


class _GoYamlLoader(yaml.SafeLoader):
    """PyYAML reading plain scalars the way go-yaml v2 — under etcd's config loader — does.

    The two YAML 1.1 readers disagree on untagged scalars: Go reads ``1e3`` as a number and
    ``y``/``n`` as booleans, while PyYAML reads ``1e3`` as a string and ``1:30`` as the
    sexagesimal 90. Matching Go keeps "etcd accepts this file" and "kvorum accepts this
    file" the same statement.
    """


def _construct_go_bool(loader: yaml.SafeLoader, node: yaml.ScalarNode) -> bool:
    text = str(loader.construct_scalar(node))
    if text not in _GO_YAML_TRUE | _GO_YAML_FALSE:
        raise yaml.constructor.ConstructorError(None, None, f"invalid boolean {text!r}")
    return text in _GO_YAML_TRUE


def _construct_go_number(loader: yaml.SafeLoader, node: yaml.ScalarNode) -> object:
    """go-yaml v2's order: int64, then uint64, then a YAML-style float; else a string."""
    text = str(loader.construct_scalar(node))
    plain = text.replace("_", "")
    for parse in (parse_go_int, parse_go_uint):
        try:
            return parse(plain)
        except GoValueError:
            pass
    if _GO_YAML_FLOAT.fullmatch(plain):
        return float(plain)
    if text in _GO_YAML_SPECIAL_FLOATS:
        return _GO_YAML_SPECIAL_FLOATS[text]
    return text


_GoYamlLoader.yaml_implicit_resolvers = {
    first: [
        (tag, pattern)
        for tag, pattern in resolvers
        if tag.rsplit(":", 1)[-1] not in ("bool", "int", "float", "timestamp")
    ]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
_GoYamlLoader.add_implicit_resolver(
    _YAML_BOOL_TAG,
    re.compile("^(?:" + "|".join(sorted(_GO_YAML_TRUE | _GO_YAML_FALSE)) + ")$"),
    list("yYnNoOtTfF"),
)
_GoYamlLoader.add_implicit_resolver(
    _GO_NUMBER_TAG, re.compile(r"^[-+.0-9][-+._0-9a-zA-Z]*$"), list("-+.0123456789")
)
_GoYamlLoader.add_constructor(_YAML_BOOL_TAG, _construct_go_bool)
_GoYamlLoader.add_constructor(_GO_NUMBER_TAG, _construct_go_number)


def _load_yaml_mapping(path: str) -> dict[Any, Any]:
    try:
        with open(path, encoding="utf-8") as handle:
            text = handle.read()
    except OSError as err:
        raise ConfigError(f"open {path}: {err.strerror or err}") from None
    except UnicodeDecodeError:
        raise ConfigError(f"config file {path}: not UTF-8 text") from None
    try:
        document = yaml.load(text, Loader=_GoYamlLoader)  # a SafeLoader subclass
    except yaml.YAMLError as err:
        detail = " ".join(str(err).split())
        raise ConfigError(f"config file {path}: invalid YAML: {detail}") from None
    if document is None:
        return {}
    if not isinstance(document, dict):
        raise ConfigError(
            f"config file {path}: expected a mapping of flag names to values, "
            f"got {_yaml_type_name(document)}"
        )
    return document


def _typed_file_values(path: str, parsed: _Parsed, late: list[ConfigError]) -> dict[str, object]:
    """Stage 2: every known key type-checked; flag name → typed value (or _KEEP)."""
    document = _load_yaml_mapping(path)
    # Go's JSON decoder matches keys case-insensitively, so etcd accepts "Name:" for "name".
    by_key = {spec.name.lower(): spec for spec in FLAGS if spec.in_file}
    sections = {name.lower(): name for name in _SECURITY_SECTIONS}
    typed: dict[str, object] = {}
    for key, value in document.items():
        folded = str(key).lower()
        entries: list[tuple[str, FlagSpec, object]] = []
        if folded in sections:
            section = sections[folded]
            if value is not None and not isinstance(value, dict):
                raise ConfigError(
                    f"config file {path}: key {section!r}: expected a mapping, "
                    f"got {_yaml_type_name(value)}"
                )
            for inner, item in (value or {}).items():
                flag_name = _SECURITY_SECTIONS[section].get(str(inner).lower())
                if flag_name is None:
                    parsed.warnings.append(
                        f"config file {path}: unknown key {section}.{inner} ignored"
                    )
                    continue
                entries.append((f"{section}.{inner}", _BY_NAME[flag_name], item))
        elif folded in by_key:
            entries.append((by_key[folded].name, by_key[folded], value))
        else:
            parsed.warnings.append(f"config file {path}: unknown key {key!r} ignored")
        for label, spec, item in entries:
            try:
                typed[spec.name] = _yaml_typed(spec, item)
            except GoValueError as err:
                error = ConfigError(f"config file {path}: key {label!r}: {err}")
                if spec.name not in _FILE_LATE_KEYS:
                    raise error from None
                late.append(error)
    return typed


def _read_config_file(path: str, parsed: _Parsed) -> list[ConfigError]:
    """Load ``path`` into ``parsed``; returns the errors etcd reports only after its checks."""
    late: list[ConfigError] = []
    typed = _typed_file_values(path, parsed, late)
    for name in _FILE_PARSED_IN_ORDER:  # stage 3
        raw = typed.pop(name, _KEEP)
        if raw is _KEEP or raw == "":
            continue  # etcd only parses these when the string is non-empty
        spec = _BY_NAME[name]
        try:
            value = _parse_flag_text(spec, cast(str, raw))
        except GoValueError as err:
            # etcd exits 1 on a bad URL list here but panics (exit status 2) on a bad cors.
            status = EXIT_USAGE if spec.kind is Kind.CORS else EXIT_INVALID
            raise ConfigError(f"config file {path}: key {name!r}: {err}", status) from None
        _set_value(parsed, spec, value)
    for name, raw in typed.items():
        spec = _BY_NAME[name]
        if spec.kind is Kind.CHOICE and raw not in (_KEEP, "", *spec.choices):
            error = ConfigError(
                f"config file {path}: key {name!r}: invalid value {raw!r}, must be one of "
                f"{', '.join(spec.choices)}"
            )
            if name not in _FILE_LATE_KEYS:
                raise error
            late.append(error)
            continue
        _set_value(parsed, spec, _KEEP if raw == "" and spec.kind is Kind.CHOICE else raw)
    return late


# --------------------------------------------------------------------------------------------
# Checks etcd makes after parsing, in etcd's order, then the derived values.
# --------------------------------------------------------------------------------------------


def _check_log_level(level: str) -> None:
    if level not in _LOG_LEVELS:
        # etcd 3.4 panics on this (exit status 2); a plain message is kinder.
        raise ConfigError(
            f'invalid value "{level}" for flag --log-level: must be one of '
            f"{', '.join(_LOG_LEVELS)}",
            EXIT_USAGE,
        )


def _check_logging(values: dict[str, object], warnings: list[str]) -> None:
    """etcd 3.4's logging checks, in its order (which decides the message when several fail)."""
    deprecated = cast("tuple[str, ...]", values["log-output"])
    outputs = cast("tuple[str, ...]", values["log-outputs"])
    # etcd 3.4 reconciles the deprecated --log-output with --log-outputs by list length.
    if len(deprecated) > len(outputs):
        warnings.append("--log-output is deprecated; use --log-outputs")
        outputs = deprecated
    elif len(deprecated) == len(outputs):
        if len(deprecated) > 1:
            raise ConfigError("both --log-output and --log-outputs are set; only set --log-outputs")
        if not deprecated:
            raise ConfigError("either --log-output or --log-outputs must be set")
        if deprecated == outputs and deprecated[0] != "default":
            raise ConfigError(
                f"--log-output={deprecated[0]} and --log-outputs={outputs[0]} are incompatible; "
                "only set --log-outputs"
            )
    values["log-outputs"] = outputs
    logger = values["logger"]
    level = cast(str, values["log-level"])
    if logger == "capnslog":
        _check_log_level(level)
        if len(outputs) != 1:
            raise ConfigError(
                f"--logger=capnslog supports only 1 value in --log-outputs, got {list(outputs)}"
            )
        if outputs[0] not in _CAPNSLOG_OUTPUTS:
            raise ConfigError(
                f"unknown log-output {outputs[0]!r} (only supports default, stderr, stdout)"
            )
    elif logger == "zap":
        if len(outputs) > 1 and "default" in outputs:
            raise ConfigError('multi logoutput for "default" is not supported yet')
        if "" in outputs:
            raise ConfigError("--log-outputs: an empty output path cannot be opened")
        _check_log_level(level)
    else:
        raise ConfigError(f"unknown logger option {logger!r} (--logger must be zap or capnslog)")


def _check_urls(values: dict[str, object]) -> None:
    for name in ("listen-peer-urls", "listen-client-urls", "listen-metrics-urls"):
        for url in cast("tuple[str, ...]", values[name]):
            try:
                check_bind_url(url)
            except GoValueError as err:
                raise ConfigError(f"--{name}: {err}") from None
    for name in ("initial-advertise-peer-urls", "advertise-client-urls"):
        urls = cast("tuple[str, ...]", values[name])
        for url in urls:
            try:
                check_host_url(url)
            except GoValueError as err:
                raise ConfigError(
                    f'--{name} "{",".join(urls)}" must be "host:port" ({err})'
                ) from None


def _validate(values: dict[str, object], may_be_proxy: bool, warnings: list[str]) -> None:
    """etcd's ``embed.Config.Validate`` plus etcdmain's proxy exception, in etcd's order."""
    _check_logging(values, warnings)
    _check_urls(values)
    bootstraps = [values["discovery"], values["initial-cluster"], values["discovery-srv"]]
    if values["initial-cluster-state"] not in ("new", "existing"):
        raise ConfigError(
            f"unexpected --initial-cluster-state {values['initial-cluster-state']!r} "
            "(must be new or existing)"
        )
    if sum(1 for source in bootstraps if source != "") > 1:
        raise ConfigError(
            'multiple discovery or bootstrap flags are set. Choose one of "initial-cluster", '
            '"discovery" or "discovery-srv"'
        )
    tick_ms = cast(int, values["heartbeat-interval"])
    election_ms = cast(int, values["election-timeout"])
    if tick_ms <= 0:
        raise ConfigError(f"--heartbeat-interval must be >0 (set to {tick_ms}ms)")
    if election_ms <= 0:
        raise ConfigError(f"--election-timeout must be >0 (set to {election_ms}ms)")
    if 5 * tick_ms > election_ms:
        raise ConfigError(
            f"--election-timeout[{election_ms}ms] should be at least as 5 times as "
            f"--heartbeat-interval[{tick_ms}ms]"
        )
    if election_ms > MAX_ELECTION_TIMEOUT_MS:
        raise ConfigError(
            f"--election-timeout[{election_ms}ms] is too long, and should be set less than "
            f"{MAX_ELECTION_TIMEOUT_MS}ms"
        )
    if values["listen-client-urls"] and not values["advertise-client-urls"] and not may_be_proxy:
        raise ConfigError(
            "--advertise-client-urls is required when --listen-client-urls is set explicitly"
        )
    if values["auto-compaction-mode"] not in ("", "periodic", "revision"):
        raise ConfigError(
            f"unknown auto-compaction-mode {values['auto-compaction-mode']!r} "
            "(must be periodic or revision)"
        )


def _compaction_retention(mode: str, retention: str) -> tuple[float, int]:
    """(period in seconds, revisions) from --auto-compaction-retention under ``mode``."""
    whole = parse_strict_atoi(retention)
    if whole is not None and whole >= 0:
        return (whole * 3600.0, 0) if mode != "revision" else (0.0, whole)
    if mode == "revision":
        # etcd 3.4 would read "1h" here as 3.6e12 revisions; refusing is the useful answer.
        raise ConfigError(
            f'invalid value "{retention}" for --auto-compaction-retention: '
            "--auto-compaction-mode=revision needs a whole number of revisions"
        )
    try:
        nanoseconds = parse_go_duration_ns(retention)
    except GoValueError as err:
        raise ConfigError(f"error parsing --auto-compaction-retention: {err}") from None
    return nanoseconds / 1e9, 0


def _initial_cluster_from_name(name: str, advertise_peer_urls: tuple[str, ...]) -> str:
    return ",".join(f"{name or DEFAULT_NAME}={url}" for url in advertise_peer_urls)


def _freeze(
    values: dict[str, object], config_file: str, explicit: set[str], warnings: list[str]
) -> ServerConfig:
    """Derived values etcd fills in after validation, then the frozen ServerConfig."""
    default_cluster = _initial_cluster_from_name(DEFAULT_NAME, ("http://localhost:2380",))
    name = cast(str, values["name"])
    if name != DEFAULT_NAME and values["initial-cluster"] == default_cluster:
        # etcd: `--name abc` alone means a one-member cluster named abc.
        values["initial-cluster"] = _initial_cluster_from_name(
            name, cast("tuple[str, ...]", values["initial-advertise-peer-urls"])
        )
    if values["data-dir"] == "":
        values["data-dir"] = f"{name}.etcd"
    mode = cast(str, values["auto-compaction-mode"]) or "periodic"
    values["auto-compaction-mode"] = mode
    period_s, revisions = _compaction_retention(
        mode, cast(str, values["auto-compaction-retention"])
    )
    quota = cast(int, values["quota-backend-bytes"])
    if quota > MAX_QUOTA_BACKEND_BYTES:
        warnings.append(
            f"--quota-backend-bytes={quota} exceeds the maximum recommended "
            f"{MAX_QUOTA_BACKEND_BYTES}"
        )
    fields: dict[str, object] = {
        "auto_compaction_period_s": period_s,
        "auto_compaction_retention_revisions": revisions,
        "config_file": config_file,
        "explicit_flags": frozenset(explicit),
        "warnings": tuple(warnings),
    }
    for spec in FLAGS:
        if spec.field is None:
            continue
        value = values[spec.name]
        if spec.kind is Kind.DURATION:
            value = cast(int, value) / 1e9
        fields[spec.field] = value
    return ServerConfig(**cast("dict[str, Any]", fields))


# --------------------------------------------------------------------------------------------
# Entry points.
# --------------------------------------------------------------------------------------------


def parse_invocation(argv: Sequence[str], environ: Mapping[str, str]) -> Invocation:
    """Read the command line, environment and config file as etcd 3.4 does.

    Raises ConfigError (with etcd's exit status) for anything etcd would refuse.
    """
    parsed = _Parsed(values=_default_values(), set_names=set(), warnings=[])
    wants_help, leftover = _parse_argv(argv, parsed)
    if wants_help:
        return Invocation("help")
    if leftover:
        raise ConfigError(f"'{leftover[0]}' is not a valid flag")
    if parsed.values["version"] is True:
        return Invocation("version")
    config_file = cast(str, parsed.values["config-file"]) or environ.get("ETCD_CONFIG_FILE", "")
    if config_file:
        # etcd ignores every other flag and variable once a config file is named. They were
        # syntax-checked above (a malformed flag still stops etcd), but their values are
        # dropped here; only the ignored-flag warnings survive.
        notes = [w for w in parsed.warnings if "no longer supported" in w]
        parsed = _Parsed(values=_default_values(), set_names=set(), warnings=notes)
        parsed.warnings.append(
            f"loading configuration from {config_file}; other flags and ETCD_* variables "
            "are ignored"
        )
        late_errors = _read_config_file(config_file, parsed)
        values = parsed.values
        discovery_set = values["discovery"] != "" or values["discovery-srv"] != ""
        default_cluster = _initial_cluster_from_name(DEFAULT_NAME, ("http://localhost:2380",))
        if discovery_set and values["initial-cluster"] == default_cluster:
            values["initial-cluster"] = ""
        _validate(values, may_be_proxy=False, warnings=parsed.warnings)
        if late_errors:
            raise late_errors[0]
    else:
        _apply_environment(parsed, environ)
        values = parsed.values
        may_be_proxy = values["proxy"] != "off" or (
            values["discovery"] != "" and values["discovery-fallback"] == "proxy"
        )
        if (
            "listen-client-urls" in parsed.set_names
            and "advertise-client-urls" not in parsed.set_names
            and not may_be_proxy
        ):
            values["advertise-client-urls"] = ()  # the default must not be advertised
        discovery_set = any(
            values[n] != "" for n in ("discovery", "discovery-srv", "discovery-srv-name")
        )
        if discovery_set and "initial-cluster" not in parsed.set_names:
            values["initial-cluster"] = ""
        _validate(values, may_be_proxy=may_be_proxy, warnings=parsed.warnings)
    return Invocation("run", _freeze(values, config_file, parsed.set_names, parsed.warnings))


def load_config(argv: Sequence[str], environ: Mapping[str, str] | None = None) -> ServerConfig:
    """The ServerConfig for ``argv`` (without the program name); for tests and embedding.

    Raises ConfigError for bad input, and also when ``argv`` asks for help or the version.
    """
    invocation = parse_invocation(argv, {} if environ is None else environ)
    if invocation.config is None:
        raise ConfigError(f"--{invocation.action} requested, no configuration to load")
    return invocation.config


def parse_initial_cluster(text: str) -> tuple[tuple[str, tuple[str, ...]], ...]:
    """``name=url,name=url,...`` → ``((name, sorted urls), ...)`` (etcd's URLsMap rules).

    Empty items are skipped; an item without ``=`` is a name with an empty URL (and fails URL
    validation, as in etcd); a name given several times collects several URLs.
    """
    grouped: dict[str, list[str]] = {}
    for item in text.split(","):
        if not item:
            continue
        name, _, url = item.partition("=")
        grouped.setdefault(name, []).append(url)
    members = []
    for name, urls in grouped.items():
        try:
            canonical = tuple(sorted(parse_url(url) for url in urls))
        except GoValueError as err:
            raise ConfigError(f"error setting up initial cluster: {err}") from None
        members.append((name, canonical))
    return tuple(members)


def verify_bootstrap(config: ServerConfig) -> None:
    """The checks etcd makes when a member starts without a WAL (a fresh data directory).

    New cluster: this member's name is in ``--initial-cluster``, its entry there equals
    ``--initial-advertise-peer-urls``, and no peer URL appears twice. Joining an existing
    cluster: the name is present, no URL twice, and no discovery URL. (etcd also resolves
    host names with DNS before comparing URLs; kvorum compares them as written.)
    """
    if config.discovery or config.discovery_srv:
        return  # membership comes from the discovery service, checked when it answers
    members = dict(config.initial_cluster_members)
    if config.name not in members:
        raise ConfigError(
            f"couldn't find local name {config.name!r} in the initial cluster configuration "
            "(--initial-cluster)"
        )
    seen: set[str] = set()
    for urls in members.values():
        for url in urls:
            if url in seen:
                raise ConfigError(f"--initial-cluster has duplicate url {url}")
            seen.add(url)
    if not config.is_new_cluster:
        return
    ours = set(members[config.name])
    advertised = set(config.initial_advertise_peer_urls)
    if ours != advertised:
        only_cluster = ",".join(f"{config.name}={u}" for u in sorted(ours - advertised))
        only_flag = ",".join(sorted(advertised - ours))
        if only_cluster:
            raise ConfigError(
                f"--initial-cluster has {only_cluster} but missing from "
                f"--initial-advertise-peer-urls={','.join(config.initial_advertise_peer_urls)}"
            )
        raise ConfigError(
            f"--initial-advertise-peer-urls has {only_flag} but missing from "
            f"--initial-cluster={config.name}={','.join(sorted(ours))}"
        )


def version_text() -> str:
    """``--version`` output in etcd's layout, describing kvorum and the etcd API it speaks."""
    arch = {"x86_64": "amd64", "aarch64": "arm64"}.get(platform.machine(), platform.machine())
    return (
        f"kvorum Version: {__version__}\n"
        f"etcd API Version: {ETCD_API_VERSION}\n"
        "Git SHA: Not provided\n"
        f"Python Version: {platform.python_version()}\n"
        f"Python OS/Arch: {sys.platform}/{arch}\n"
    )


def _help_groups() -> Iterator[tuple[str, list[FlagSpec]]]:
    order: list[str] = []
    grouped: dict[str, list[FlagSpec]] = {}
    for spec in FLAGS:
        if spec.hidden or spec.group == _H:
            continue
        if spec.group not in grouped:
            order.append(spec.group)
            grouped[spec.group] = []
        grouped[spec.group].append(spec)
    for group in order:
        yield group, grouped[group]


def help_text() -> str:
    """``--help`` output: usage, then every documented flag with its default."""
    lines = [
        "Usage:",
        "",
        "  kvorum [flags]",
        "    Start a kvorum member (an etcd v3 compatible server).",
        "",
        "  kvorum --version",
        "    Print the version of kvorum and of the etcd API it speaks.",
        "",
        "  kvorum -h | --help",
        "    Print this help.",
        "",
        "  kvorum --config-file <path>",
        "    Read the configuration from a YAML file keyed by flag name; other flags and",
        "    ETCD_* environment variables are then ignored.",
        "",
        "Every flag can also be set with ETCD_<FLAG_NAME> (e.g. ETCD_NAME, ETCD_DATA_DIR).",
    ]
    for group, specs in _help_groups():
        lines += ["", f"{group}:"]
        for spec in specs:
            shown = "${name}.etcd" if spec.name == "data-dir" else spec.default
            lines.append(f"  --{spec.name} '{shown}'")
            lines.append(f"    {spec.help}")
    return "\n".join(lines) + "\n"
