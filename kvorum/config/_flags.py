"""The flag table — every flag etcd 3.4.23 defines, with its type, default and help — and how
one flag's text becomes a value in the scratch state the sources fill in.

The command line, the environment and the config file all set values through
:func:`set_value`, so "which flags were given" (``Parsed.set_names``) means the same thing
whatever the source.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Any, Final

from kvorum.config._goflag import (
    GoValueError,
    parse_go_bool,
    parse_go_duration_ns,
    parse_go_int,
    parse_go_uint,
)
from kvorum.config._urls import parse_url_list

DEFAULT_NAME: Final = "default"
ENV_PREFIX: Final = "ETCD_"
HIDDEN_GROUP: Final = "hidden"  # flags etcd accepts but leaves out of --help


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


# The --help groups, in the order etcd prints them.
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
    HIDDEN_GROUP,
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


BY_NAME: Final = {spec.name: spec for spec in FLAGS}


class _Keep:
    """Marker: the value leaves the previous one in place (etcd's empty URL-list exception)."""


KEEP: Final = _Keep()


def parse_flag_text(spec: FlagSpec, text: str) -> object:
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
        return KEEP if text == "" else parse_url_list(text)
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


def default_values() -> dict[str, object]:
    """Every flag at etcd's default: the starting point each source then overwrites."""
    values: dict[str, object] = {}
    for spec in FLAGS:
        value = parse_flag_text(spec, spec.default)
        values[spec.name] = () if value is KEEP else value
    return values


@dataclass(slots=True)
class Parsed:
    """Mutable scratch state while reading flags; frozen into ServerConfig at the end."""

    values: dict[str, object]
    set_names: set[str]
    warnings: list[str]


def set_value(parsed: Parsed, spec: FlagSpec, value: object) -> None:
    """Record one flag as given by any source; ignored v2 flags only warn, KEEP keeps the value."""
    if spec.kind is Kind.IGNORED:
        parsed.warnings.append(f'flag "--{spec.name}" is no longer supported - ignoring')
    elif value is not KEEP:
        parsed.values[spec.name] = value
    parsed.set_names.add(spec.name)
