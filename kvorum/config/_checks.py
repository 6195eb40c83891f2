"""The checks etcd makes once every source is read, in etcd's order, and the bootstrap checks.

The order decides which complaint is reported when several values are wrong, so it follows
etcd 3.4's ``embed.Config.Validate`` (plus etcdmain's proxy exception) step by step. A value
these checks refuse exits with status 1 ("error verifying flags"), except where noted.

:func:`verify_bootstrap` holds the checks etcd makes only when a member starts without a WAL;
the member runs them when it creates a fresh data directory. Pure.
"""

from __future__ import annotations

from typing import Final, cast

from kvorum.config._errors import EXIT_USAGE, ConfigError
from kvorum.config._goflag import GoValueError
from kvorum.config._server_config import ServerConfig
from kvorum.config._urls import check_bind_url, check_host_url

MAX_ELECTION_TIMEOUT_MS: Final = 50_000  # etcd refuses longer election timeouts
_LOG_LEVELS: Final = ("debug", "info", "warn", "error", "panic", "fatal")
_CAPNSLOG_OUTPUTS: Final = ("default", "stderr", "stdout")


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


def validate(values: dict[str, object], may_be_proxy: bool, warnings: list[str]) -> None:
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
