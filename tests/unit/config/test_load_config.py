"""Flags, ETCD_* variables and their precedence, checks and derived values."""

from __future__ import annotations

import dataclasses

import pytest

from kvorum.config import (
    DEFAULT_QUOTA_BACKEND_BYTES,
    EXIT_INVALID,
    EXIT_USAGE,
    FLAGS,
    ConfigError,
    ServerConfig,
    load_config,
    parse_invocation,
    verify_bootstrap,
)


def refused(argv: list[str], env: dict[str, str] | None = None) -> ConfigError:
    with pytest.raises(ConfigError) as caught:
        load_config(argv, env or {})
    return caught.value


def test_defaults_are_etcd_34s() -> None:
    config = load_config([])
    assert config.name == "default"
    assert config.data_dir == "default.etcd"
    assert config.wal_dir == ""
    assert config.listen_client_urls == ("http://localhost:2379",)
    assert config.advertise_client_urls == ("http://localhost:2379",)
    assert config.listen_peer_urls == ("http://localhost:2380",)
    assert config.initial_advertise_peer_urls == ("http://localhost:2380",)
    assert config.initial_cluster == "default=http://localhost:2380"
    assert config.initial_cluster_state == "new"
    assert config.initial_cluster_token == "etcd-cluster"
    assert (config.heartbeat_interval_ms, config.election_timeout_ms) == (100, 1000)
    assert config.election_ticks == 10
    assert config.snapshot_count == 100_000
    assert (config.max_snapshots, config.max_wals) == (5, 5)
    assert config.quota_backend_bytes == 0
    assert config.quota_backend_limit_bytes == DEFAULT_QUOTA_BACKEND_BYTES == 2 * 1024**3
    assert config.max_request_bytes == 1_572_864
    assert config.max_txn_ops == 128
    assert config.max_concurrent_streams == 2**32 - 1
    assert config.grpc_keepalive_min_time_s == 5.0
    assert config.grpc_keepalive_interval_s == 7200.0
    assert config.grpc_keepalive_timeout_s == 20.0
    assert config.pre_vote is False  # etcd 3.4's default, recorded faithfully
    assert config.strict_reconfig_check is True
    assert config.initial_election_tick_advance is True
    assert config.auto_compaction_mode == "periodic"
    assert config.auto_compaction_retention == "0"
    assert config.auto_compaction_period_s == 0.0
    assert config.logger == "capnslog"
    assert config.log_level == "info"
    assert config.log_outputs == ("default",)
    assert config.auth_token == "simple"
    assert (config.bcrypt_cost, config.auth_token_ttl_s) == (10, 300)
    assert config.cors == ("*",) and config.host_whitelist == ("*",)
    assert config.enable_v2 is False and config.enable_grpc_gateway is True
    assert config.experimental_watch_progress_notify_interval_s == 600.0
    assert config.experimental_warning_apply_duration_s == 0.1
    assert config.warnings == () and config.config_file == ""


def test_config_is_frozen_and_slotted() -> None:
    config = load_config([])
    with pytest.raises(dataclasses.FrozenInstanceError):
        config.name = "other"  # type: ignore[misc]
    assert not hasattr(config, "__dict__")


def test_every_flag_lands_in_a_typed_field() -> None:
    fields = {f.name: f for f in dataclasses.fields(ServerConfig)}
    for spec in FLAGS:
        if spec.field is not None:
            assert spec.field in fields, spec.name
    assert {f.type for f in fields.values()} <= {
        "str",
        "int",
        "bool",
        "float",
        "tuple[str, ...]",
        "frozenset[str]",
        "Literal['new', 'existing']",
        "Literal['exit', 'proxy']",
        "Literal['periodic', 'revision']",
        "Literal['zap', 'capnslog']",
        "Literal['off', 'readonly', 'on']",
    }


@pytest.mark.parametrize(
    "argv",
    [
        ["--name", "infra0"],
        ["--name=infra0"],
        ["-name", "infra0"],
        ["-name=infra0"],
        ["--name", "other", "--name", "infra0"],  # the last one wins, as in Go
    ],
)
def test_value_flag_forms(argv: list[str]) -> None:
    assert load_config(argv).name == "infra0"


@pytest.mark.parametrize(
    ("argv", "value"),
    [
        (["--pre-vote"], True),
        (["-pre-vote"], True),
        (["--pre-vote=true"], True),
        (["-pre-vote=1"], True),
        (["--pre-vote=false"], False),
        (["--strict-reconfig-check=F"], False),
    ],
)
def test_boolean_flag_forms(argv: list[str], value: bool) -> None:
    config = load_config(argv)
    assert (config.pre_vote if "vote" in argv[0] else config.strict_reconfig_check) is value


def test_boolean_flags_do_not_take_the_next_word() -> None:
    err = refused(["--pre-vote", "false"])
    assert (err.exit_code, err.message) == (EXIT_INVALID, "'false' is not a valid flag")


def test_value_flag_takes_the_next_word_even_if_it_looks_like_a_flag() -> None:
    assert load_config(["--name", "--weird"]).name == "--weird"


def test_double_dash_ends_flags() -> None:
    assert load_config(["--"]).name == "default"
    assert refused(["--", "--name", "x"]).message == "'--name' is not a valid flag"


def test_typical_cluster_member() -> None:
    config = load_config(
        [
            "--name", "infra0",
            "--initial-advertise-peer-urls", "http://10.0.0.1:2380",
            "--listen-peer-urls", "http://10.0.0.1:2380",
            "--listen-client-urls", "http://10.0.0.1:2379,http://127.0.0.1:2379",
            "--advertise-client-urls", "http://10.0.0.1:2379",
            "--initial-cluster-token", "etcd-cluster-1",
            "--initial-cluster",
            "infra0=http://10.0.0.1:2380,infra1=http://10.0.0.2:2380,infra2=http://10.0.0.3:2380",
            "--initial-cluster-state", "new",
        ]
    )  # fmt: skip
    assert config.data_dir == "infra0.etcd"
    assert config.listen_client_urls == ("http://10.0.0.1:2379", "http://127.0.0.1:2379")
    assert [name for name, _ in config.initial_cluster_members] == ["infra0", "infra1", "infra2"]
    verify_bootstrap(config)


def test_name_alone_makes_a_one_member_cluster_of_that_name() -> None:
    config = load_config(["--name", "solo"])
    assert config.initial_cluster == "solo=http://localhost:2380"
    verify_bootstrap(config)


def test_explicit_flags_are_recorded_so_the_member_can_apply_its_own_defaults() -> None:
    config = load_config(["--pre-vote=false", "--name=n"], {"ETCD_MAX_WALS": "3"})
    assert config.explicit_flags == {"pre-vote", "name", "max-wals"}
    assert config.is_explicit("pre-vote") and not config.is_explicit("strict-reconfig-check")
    assert load_config([]).explicit_flags == frozenset()


def test_units_are_converted_into_the_field_units() -> None:
    config = load_config(
        [
            "--heartbeat-interval=50",
            "--election-timeout=0x1f4",
            "--grpc-keepalive-min-time=1.5s",
            "--backend-batch-interval=10ms",
            "--auto-compaction-retention=30m",
        ]
    )
    assert (config.heartbeat_interval_ms, config.election_timeout_ms) == (50, 500)
    assert config.election_ticks == 10
    assert config.grpc_keepalive_min_time_s == 1.5
    assert config.backend_batch_interval_s == 0.01
    assert config.auto_compaction_period_s == 1800.0


def test_auto_compaction_retention_by_mode() -> None:
    assert load_config(["--auto-compaction-retention=2"]).auto_compaction_period_s == 7200.0
    revision = load_config(["--auto-compaction-mode=revision", "--auto-compaction-retention=1000"])
    assert revision.auto_compaction_retention_revisions == 1000
    assert revision.auto_compaction_period_s == 0.0
    # etcd 3.4 reads "1h" in revision mode as 3.6e12 revisions; kvorum refuses instead.
    err = refused(["--auto-compaction-mode=revision", "--auto-compaction-retention=1h"])
    assert "--auto-compaction-retention" in err.message
    err = refused(["--auto-compaction-retention=1x"])
    assert "--auto-compaction-retention" in err.message and err.exit_code == EXIT_INVALID


def test_quota_helper() -> None:
    assert load_config(["--quota-backend-bytes=-1"]).quota_backend_limit_bytes is None
    assert load_config(["--quota-backend-bytes=1024"]).quota_backend_limit_bytes == 1024
    big = load_config(["--quota-backend-bytes=17179869184"])
    assert any("quota-backend-bytes" in w for w in big.warnings)


def test_tls_and_auth_flags_are_stored() -> None:
    config = load_config(
        [
            "--cert-file=/c.pem", "--key-file=/k.pem", "--client-cert-auth",
            "--trusted-ca-file=/ca.pem", "--client-crl-file=/crl",
            "--peer-cert-file=/pc.pem", "--peer-key-file=/pk.pem", "--peer-client-cert-auth",
            "--peer-trusted-ca-file=/pca.pem", "--peer-cert-allowed-cn=etcd",
            "--cipher-suites=TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,TLS_AES_128_GCM_SHA256",
            "--auth-token=jwt,pub-key=a.pub,priv-key=a.key,sign-method=RS256",
            "--bcrypt-cost=12", "--auth-token-ttl=60",
        ]
    )  # fmt: skip
    assert (config.cert_file, config.key_file, config.client_cert_auth) == (
        "/c.pem",
        "/k.pem",
        True,
    )
    assert config.trusted_ca_file == "/ca.pem" and config.client_crl_file == "/crl"
    assert config.peer_client_cert_auth is True and config.peer_cert_allowed_cn == "etcd"
    assert config.cipher_suites == (
        "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256",
        "TLS_AES_128_GCM_SHA256",
    )
    assert config.auth_token.startswith("jwt,") and config.bcrypt_cost == 12
    assert config.auth_token_ttl_s == 60


def test_ignored_v2_flags_only_warn() -> None:
    config = load_config(["--v", "--config=old.conf"])
    assert len(config.warnings) == 2 and all("no longer supported" in w for w in config.warnings)


# ---------------------------------------------------------------- environment


def test_environment_sets_flags() -> None:
    config = load_config(
        [],
        {
            "ETCD_NAME": "envname",
            "ETCD_HEARTBEAT_INTERVAL": "200",
            "ETCD_ELECTION_TIMEOUT": "2000",
            "ETCD_PRE_VOTE": "true",
            "ETCD_LISTEN_CLIENT_URLS": "http://127.0.0.1:3379",
            "ETCD_ADVERTISE_CLIENT_URLS": "http://127.0.0.1:3379",
        },
    )
    assert config.name == "envname" and config.initial_cluster == "envname=http://localhost:2380"
    assert (config.heartbeat_interval_ms, config.election_timeout_ms) == (200, 2000)
    assert config.pre_vote is True
    assert config.listen_client_urls == ("http://127.0.0.1:3379",)


def test_environment_and_flag_for_the_same_setting_is_refused() -> None:
    err = refused(["--name", "flagname"], {"ETCD_NAME": "envname"})
    assert "ETCD_NAME" in err.message and "conflicting" in err.message
    assert err.exit_code == EXIT_INVALID
    # etcd refuses even when the variable is empty.
    assert "ETCD_NAME" in refused(["--name", "flagname"], {"ETCD_NAME": ""}).message


def test_unknown_etcd_variable_only_warns_and_other_variables_are_ignored() -> None:
    config = load_config([], {"ETCD_BOGUS": "1", "ETCDCTL_API": "3", "HOME": "/root"})
    assert config.warnings == ("unrecognized environment variable ETCD_BOGUS=1",)


def test_bad_environment_value_names_the_variable() -> None:
    err = refused([], {"ETCD_HEARTBEAT_INTERVAL": "abc"})
    assert err.message == 'invalid value "abc" for ETCD_HEARTBEAT_INTERVAL: parse error'
    assert err.exit_code == EXIT_INVALID


def test_listen_client_urls_from_environment_also_require_advertise() -> None:
    err = refused([], {"ETCD_LISTEN_CLIENT_URLS": "http://10.0.0.1:2379"})
    assert "--advertise-client-urls is required" in err.message


# ---------------------------------------------------------------- command-line errors


@pytest.mark.parametrize(
    ("argv", "exit_code", "message"),
    [
        (["--unknown-flag"], EXIT_USAGE, "flag provided but not defined: --unknown-flag"),
        (["---name=x"], EXIT_USAGE, "bad flag syntax: ---name=x"),
        (["--name"], EXIT_USAGE, "flag needs an argument: --name"),
        (
            ["--heartbeat-interval=abc"],
            EXIT_USAGE,
            'invalid value "abc" for flag --heartbeat-interval: parse error',
        ),
        (
            ["-heartbeat-interval", "+50"],
            EXIT_USAGE,
            'invalid value "+50" for flag --heartbeat-interval: parse error',
        ),
        (
            ["--snapshot-count=-1"],
            EXIT_USAGE,
            'invalid value "-1" for flag --snapshot-count: parse error',
        ),
        (
            ["--pre-vote=yes"],
            EXIT_USAGE,
            'invalid boolean value "yes" for --pre-vote: parse error',
        ),
        (
            ["--initial-cluster-state", "bogus"],
            EXIT_USAGE,
            'invalid value "bogus" for flag --initial-cluster-state: must be one of new, existing',
        ),
        (
            ["--listen-client-urls", "foo"],
            EXIT_USAGE,
            'invalid value "foo" for flag --listen-client-urls: URL scheme must be http, '
            "https, unix, or unixs: foo",
        ),
        (
            ["--grpc-keepalive-min-time=5"],
            EXIT_USAGE,
            'invalid value "5" for flag --grpc-keepalive-min-time: missing unit in duration',
        ),
        (["--log-level=loud"], EXIT_USAGE, "--log-level"),
        (["positional"], EXIT_INVALID, "'positional' is not a valid flag"),
        (["--logger", "bogus"], EXIT_INVALID, "unknown logger option 'bogus'"),
        (
            ["--election-timeout", "300"],
            EXIT_INVALID,
            "--election-timeout[300ms] should be at least as 5 times as "
            "--heartbeat-interval[100ms]",
        ),
        (["--heartbeat-interval=0"], EXIT_INVALID, "--heartbeat-interval must be >0"),
        (["--election-timeout=60000"], EXIT_INVALID, "--election-timeout[60000ms] is too long"),
        (
            ["--listen-client-urls", "http://10.0.0.1:2379"],
            EXIT_INVALID,
            "--advertise-client-urls is required when --listen-client-urls is set explicitly",
        ),
        (
            ["--listen-peer-urls", "http://node1.example:2380"],
            EXIT_INVALID,
            "--listen-peer-urls: expected IP in URL for binding (http://node1.example:2380)",
        ),
        (
            ["--advertise-client-urls", "http://:2379"],
            EXIT_INVALID,
            '--advertise-client-urls "http://:2379" must be "host:port"',
        ),
        (["--auto-compaction-mode=hourly"], EXIT_INVALID, "unknown auto-compaction-mode"),
        (["--log-outputs=stdout,stderr"], EXIT_INVALID, "--log-outputs"),
        (["--logger=zap", "--log-outputs=default,stderr"], EXIT_INVALID, "default"),
        (
            ["--discovery=https://discovery.example/x", "--initial-cluster=a=http://1.2.3.4:1"],
            EXIT_INVALID,
            "multiple discovery or bootstrap flags are set",
        ),
    ],
)
def test_refusals_are_one_line_naming_the_flag(
    argv: list[str], exit_code: int, message: str
) -> None:
    err = refused(argv)
    assert message in err.message
    assert "\n" not in err.message
    assert err.exit_code == exit_code


def test_help_and_version_are_actions() -> None:
    for argv in (["-h"], ["--help"], ["-help"], ["--name", "x", "-h"]):
        assert parse_invocation(argv, {}).action == "help"
    assert parse_invocation(["--version"], {}).action == "version"
    # Version is printed before the config is checked, as etcd does.
    assert parse_invocation(["--version", "--election-timeout=1"], {}).action == "version"
    assert refused(["--version", "extra"]).message == "'extra' is not a valid flag"


def test_v2_proxy_mode_lifts_the_advertise_requirement() -> None:
    config = load_config(["--proxy=on", "--listen-client-urls=http://10.0.0.1:2379"])
    assert config.proxy == "on"
    assert config.advertise_client_urls == ("http://localhost:2379",)


def test_discovery_clears_the_default_initial_cluster() -> None:
    config = load_config(["--discovery=https://discovery.example/abc"])
    assert config.initial_cluster == ""
    verify_bootstrap(config)  # membership then comes from the discovery service


# ---------------------------------------------------------------- bootstrap checks


def bootstrap_error(argv: list[str]) -> str:
    config = load_config(argv)
    with pytest.raises(ConfigError) as caught:
        verify_bootstrap(config)
    assert "\n" not in caught.value.message
    return caught.value.message


def test_name_must_be_in_initial_cluster() -> None:
    message = bootstrap_error(["--name", "foo", "--initial-cluster", "bar=http://127.0.0.1:2380"])
    assert message.startswith("couldn't find local name 'foo' in the initial cluster")


def test_advertised_peer_urls_must_match_initial_cluster() -> None:
    message = bootstrap_error(
        [
            "--name=foo",
            "--initial-cluster=foo=http://localhost:2380",
            "--initial-advertise-peer-urls=http://127.0.0.1:2380",
        ]
    )
    assert "--initial-cluster has foo=http://localhost:2380 but missing from" in message
    message = bootstrap_error(
        [
            "--name=foo",
            "--initial-cluster=foo=http://127.0.0.1:2380",
            "--initial-advertise-peer-urls=http://127.0.0.1:2380,http://127.0.0.1:2381",
        ]
    )
    assert "--initial-advertise-peer-urls has http://127.0.0.1:2381 but missing" in message


def test_initial_cluster_errors() -> None:
    assert "error setting up initial cluster" in bootstrap_error(["--initial-cluster=foo"])
    message = bootstrap_error(
        ["--initial-cluster=default=http://localhost:2380,other=http://localhost:2380"]
    )
    assert "duplicate url" in message


def test_joining_an_existing_cluster_skips_the_advertise_match() -> None:
    config = load_config(
        [
            "--name=n3",
            "--initial-cluster-state=existing",
            "--initial-cluster=n1=http://10.0.0.1:2380,n3=http://10.0.0.3:2380",
        ]
    )
    assert not config.is_new_cluster
    verify_bootstrap(config)
