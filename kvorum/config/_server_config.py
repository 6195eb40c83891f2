"""The frozen :class:`ServerConfig` a member starts from, and the values derived from it.

Fields carry etcd 3.4's defaults with units in their names; durations are seconds, as floats.
The properties answer the questions the member asks (election ticks, the quota in force, the
initial member and cluster ids) in one place, so no caller re-derives them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final, Literal

from kvorum import ids
from kvorum.config._urls import parse_initial_cluster

DEFAULT_QUOTA_BACKEND_BYTES: Final = 2 * 1024**3  # what --quota-backend-bytes=0 means


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
