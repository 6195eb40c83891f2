"""--config-file: YAML keyed by flag name, and etcd's rule that it overrides everything else."""

from __future__ import annotations

from pathlib import Path

import pytest

from kvorum.config import EXIT_INVALID, EXIT_USAGE, ConfigError, load_config


def write(tmp_path: Path, text: str) -> str:
    path = tmp_path / "etcd.conf.yml"
    path.write_text(text, encoding="utf-8")
    return str(path)


FULL = """\
name: infra1
data-dir: /var/lib/etcd/infra1
wal-dir: /var/lib/etcd-wal
snapshot-count: 10000
heartbeat-interval: 100
election-timeout: 1000
quota-backend-bytes: 0x80000000
listen-peer-urls: http://10.0.0.2:2380
listen-client-urls: http://10.0.0.2:2379,http://127.0.0.1:2379
max-snapshots: 5
max-wals: 5
initial-advertise-peer-urls: http://10.0.0.2:2380
advertise-client-urls: http://10.0.0.2:2379
initial-cluster: infra0=http://10.0.0.1:2380,infra1=http://10.0.0.2:2380
initial-cluster-token: 'etcd-cluster'
initial-cluster-state: 'new'
strict-reconfig-check: false
enable-v2: false
enable-pprof: true
proxy: 'off'
client-transport-security:
  cert-file: /etc/ssl/server.crt
  key-file: /etc/ssl/server.key
  client-cert-auth: true
  trusted-ca-file: /etc/ssl/ca.crt
  auto-tls: false
peer-transport-security:
  cert-file: /etc/ssl/peer.crt
  client-cert-auth: true
debug: false
logger: zap
log-outputs: [stderr]
log-level: warn
pre-vote: yes
auto-compaction-mode: revision
auto-compaction-retention: "1000"
grpc-keepalive-min-time: 5000000000
cipher-suites: [TLS_AES_128_GCM_SHA256]
"""


def test_a_full_etcd_style_config_file(tmp_path: Path) -> None:
    path = write(tmp_path, FULL)
    config = load_config(["--config-file", path])
    assert config.config_file == path
    assert config.name == "infra1" and config.data_dir == "/var/lib/etcd/infra1"
    assert config.wal_dir == "/var/lib/etcd-wal"
    assert config.snapshot_count == 10_000
    assert config.quota_backend_bytes == 2**31
    assert config.listen_client_urls == ("http://10.0.0.2:2379", "http://127.0.0.1:2379")
    assert [n for n, _ in config.initial_cluster_members] == ["infra0", "infra1"]
    assert config.strict_reconfig_check is False and config.enable_pprof is True
    assert (config.cert_file, config.key_file) == ("/etc/ssl/server.crt", "/etc/ssl/server.key")
    assert config.client_cert_auth is True and config.trusted_ca_file == "/etc/ssl/ca.crt"
    assert config.peer_cert_file == "/etc/ssl/peer.crt" and config.peer_client_cert_auth is True
    assert config.peer_key_file == ""
    assert (config.logger, config.log_outputs, config.log_level) == ("zap", ("stderr",), "warn")
    assert config.pre_vote is True  # YAML 1.1 "yes" is a boolean, for etcd's decoder too
    assert config.auto_compaction_retention_revisions == 1000
    assert config.grpc_keepalive_min_time_s == 5.0
    assert config.cipher_suites == ("TLS_AES_128_GCM_SHA256",)


def test_config_file_ignores_other_flags_and_environment(tmp_path: Path) -> None:
    path = write(tmp_path, "name: from-file\n")
    config = load_config(
        ["--config-file", path, "--name", "from-flag", "--election-timeout", "1"],
        {"ETCD_NAME": "from-env", "ETCD_HEARTBEAT_INTERVAL": "abc"},
    )
    assert config.name == "from-file" and config.explicit_flags == {"name"}
    assert config.election_timeout_ms == 1000 and config.heartbeat_interval_ms == 100
    assert config.initial_cluster == "from-file=http://localhost:2380"


def test_other_flags_are_still_syntax_checked(tmp_path: Path) -> None:
    path = write(tmp_path, "name: from-file\n")
    with pytest.raises(ConfigError) as caught:
        load_config(["--config-file", path, "--heartbeat-interval=abc"])
    assert caught.value.exit_code == EXIT_USAGE


def test_config_file_from_environment(tmp_path: Path) -> None:
    path = write(tmp_path, "name: via-env\n")
    config = load_config(["--name", "ignored"], {"ETCD_CONFIG_FILE": path, "ETCD_NAME": "x"})
    assert config.name == "via-env" and config.config_file == path


def test_unknown_keys_are_ignored_with_a_warning(tmp_path: Path) -> None:
    path = write(tmp_path, "name: member-a\nheartbeat-intervall: 50\n")
    config = load_config(["--config-file", path])
    assert config.heartbeat_interval_ms == 100
    assert any("'heartbeat-intervall'" in w for w in config.warnings)


def test_plain_scalars_read_as_go_yaml_reads_them(tmp_path: Path) -> None:
    # go-yaml v2 (etcd's reader) and PyYAML disagree on these; kvorum follows Go.
    text = "max-wals: 1e3\nmax-snapshots: 0o17\npre-vote: y\nenable-v2: n\nname: '1e3'\n"
    config = load_config(["--config-file", write(tmp_path, text)])
    assert (config.max_wals, config.max_snapshots) == (1000, 15)
    assert (config.pre_vote, config.enable_v2, config.name) == (True, False, "1e3")
    for bad in ("name: 1e3\n", "name: n\n", "max-wals: 1:30\n"):
        with pytest.raises(ConfigError):
            load_config(["--config-file", write(tmp_path, bad)])


def test_keys_match_case_insensitively_like_gos_json(tmp_path: Path) -> None:
    config = load_config(["--config-file", write(tmp_path, "Name: upper\n")])
    assert config.name == "upper"


def test_empty_file_and_null_values_keep_defaults(tmp_path: Path) -> None:
    assert load_config(["--config-file", write(tmp_path, "")]).name == "default"
    config = load_config(["--config-file", write(tmp_path, "snapshot-count: null\n")])
    assert config.snapshot_count == 100_000


def test_listen_client_urls_in_a_file_keep_the_default_advertise(tmp_path: Path) -> None:
    # Unlike the command line, etcd's file path leaves advertise-client-urls at its default.
    path = write(tmp_path, "listen-client-urls: http://10.0.0.1:2379\n")
    config = load_config(["--config-file", path])
    assert config.advertise_client_urls == ("http://localhost:2379",)


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ("grpc-keepalive-min-time: 5s\n", "'grpc-keepalive-min-time'"),  # integer ns only
        ("log-outputs: stderr\n", "'log-outputs'"),  # must be a list
        ("name: 123\n", "'name'"),  # a number is not a string to etcd
        ("auto-compaction-retention: 5\n", "'auto-compaction-retention'"),
        ('pre-vote: "true"\n', "'pre-vote'"),
        ("heartbeat-interval: -1\n", "'heartbeat-interval'"),
        ("heartbeat-interval: 1.5\n", "'heartbeat-interval'"),
        ("listen-client-urls: foo\n", "'listen-client-urls'"),
        ("client-transport-security: 5\n", "'client-transport-security'"),
        ("peer-transport-security:\n  auto-tls: maybe\n", "peer-transport-security.auto-tls"),
        ("proxy: bogus\n", "'proxy'"),
        ("initial-cluster-state: bogus\n", "'initial-cluster-state'"),
        ("election-timeout: 300\n", "--election-timeout[300ms]"),
        ("name: [unclosed\n", "invalid YAML"),
        ("- a\n- b\n", "expected a mapping"),
    ],
)
def test_bad_files_are_refused_naming_the_key(tmp_path: Path, text: str, needle: str) -> None:
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as caught:
        load_config(["--config-file", path])
    assert needle in caught.value.message
    assert "\n" not in caught.value.message
    assert caught.value.exit_code == EXIT_INVALID


def test_missing_file_is_refused(tmp_path: Path) -> None:
    missing = str(tmp_path / "nope.yml")
    with pytest.raises(ConfigError) as caught:
        load_config(["--config-file", missing])
    assert caught.value.message.startswith(f"open {missing}: ")
