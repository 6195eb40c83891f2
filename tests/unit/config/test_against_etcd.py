"""The same command lines, environments and config files given to real etcd 3.4 and to kvorum:
each must be accepted or refused by both, with the same exit status.

To learn whether etcd accepts a command line without letting it start a server, every case
starts with ``--auto-compaction-mode=poison`` (first, so that no flag of the case can swallow
it as its value, and no case sets that flag): etcd checks that value last among its checks,
so "unknown auto-compaction-mode" means every other flag passed. kvorum performs the same
checks in the same order, so the poison marks acceptance on both sides. Bootstrap cases (which
etcd only checks while starting) run without poison on free loopback ports and a tmp data dir.
A config-file case carries the poison as a key of its file instead.

Beyond the table, seeded random command lines, environments and files are compared the same
way (a few dozen by default; ``KVORUM_LONG=1`` runs a thousand of each).
"""

from __future__ import annotations

import os
import random
import re
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from kvorum.config import ConfigError, parse_invocation, verify_bootstrap
from tests.unit.config.etcd_oracle import free_port, requires_etcd, run_etcd

POISON = "--auto-compaction-mode=poison"
ACCEPT = "accept"
POISONED = re.compile(r'unknown auto-compaction-mode \\?"poison\\?"')


@dataclass(frozen=True)
class Case:
    argv: tuple[str, ...]
    env: dict[str, str] = field(default_factory=dict)
    config_file: str | None = None  # YAML text; "{file}" in argv/env becomes its path

    def materialise(self, tmp_path: Path) -> tuple[list[str], dict[str, str]]:
        path = tmp_path / "conf.yml"
        if self.config_file is not None:
            path.write_text(self.config_file + "\nauto-compaction-mode: poison\n")
        argv = [a.replace("{file}", str(path)) for a in self.argv]
        env = {k: v.replace("{file}", str(path)) for k, v in self.env.items()}
        return argv, env


def case(*argv: str, env: dict[str, str] | None = None, file: str | None = None) -> Case:
    return Case(tuple(argv), env or {}, file)


CASES = [
    # flag forms
    case(),
    case("--name", "x"),
    case("-name", "x"),
    case("--name=x"),
    case("-name=x"),
    case("--name="),
    case("--"),
    case("--pre-vote"),
    case("-pre-vote=false"),
    case("--pre-vote=T"),
    case("--pre-vote", "false"),
    case("--pre-vote=yes"),
    case("--pre-vote=tRue"),
    case("---name=x"),
    case("--unknown-flag"),
    case("--name"),
    case("positional"),
    case("-"),
    case("--", "--name", "x"),
    case("--v"),
    case("--config=old"),
    case("--config", "old"),
    case("-h"),
    case("--help"),
    case("--version"),
    case("--version", "extra"),
    # numbers, booleans and durations with Go's syntax
    case("--heartbeat-interval=0x10"),
    case("--heartbeat-interval=010"),
    case("--heartbeat-interval=08"),
    case("--heartbeat-interval=1_00"),
    case("--heartbeat-interval=+50"),
    case("--heartbeat-interval=abc"),
    case("--heartbeat-interval"),
    case("--snapshot-count=-1"),
    case("--snapshot-count=18446744073709551615"),
    case("--snapshot-count=18446744073709551616"),
    case("--max-concurrent-streams=4294967296"),
    case("--quota-backend-bytes=+5"),
    case("--quota-backend-bytes=-0x10"),
    case("--max-request-bytes=1.5"),
    case("--grpc-keepalive-min-time=1.5h"),
    case("--grpc-keepalive-min-time=.5s"),
    case("--grpc-keepalive-min-time=-1s"),
    case("--grpc-keepalive-min-time=0"),
    case("--grpc-keepalive-min-time=5"),
    case("--grpc-keepalive-min-time="),
    # choices and names etcd checks
    case("--initial-cluster-state", "existing"),
    case("--initial-cluster-state", "bogus"),
    case("--discovery-fallback=bogus"),
    case("--proxy=bogus"),
    case("--logger=bogus"),
    case("--logger=zap", "--log-outputs=stderr,stdout"),
    case("--logger=zap", "--log-outputs=default,stdout"),
    case("--log-outputs=stdout,stderr"),
    case("--log-outputs=/tmp/kvorum-test.log"),
    case("--log-level=debug"),
    case("--log-level=bogus"),
    # URLs
    case("--listen-client-urls", "foo"),
    case("--listen-client-urls", "ftp://1.2.3.4:5"),
    case("--listen-client-urls", "http://1.2.3.4"),
    case("--listen-client-urls", "http://1.2.3.4:5/path"),
    case("--listen-client-urls=", "--advertise-client-urls=http://127.0.0.1:1"),
    case("--listen-client-urls=http://127.0.0.1:1", "--advertise-client-urls=http://a.example:1"),
    case("--listen-client-urls=http://a.example:1", "--advertise-client-urls=http://a.example:1"),
    case("--listen-peer-urls=http://[::1]:2380"),
    case("--listen-peer-urls=unix://localhost:1"),
    case("--advertise-client-urls=http://:2379"),
    case("--listen-client-urls=http://10.0.0.1:2379"),
    case("--listen-client-urls=http://10.0.0.1:2379", "--proxy=on"),
    case("--cors", "http://a.example:80"),
    case("--cors", "foo"),
    case("--host-whitelist", "a,b"),
    case("--discovery=http://d.example:1/x", "--initial-cluster=a=http://127.0.0.1:1"),
    # timing
    case("--election-timeout=300"),
    case("--election-timeout=500"),
    case("--heartbeat-interval=0"),
    case("--election-timeout=50000"),
    case("--election-timeout=50001"),
    # environment
    case(env={"ETCD_NAME": "x"}),
    case(env={"ETCD_BOGUS": "1"}),
    case(env={"ETCD_PRE_VOTE": "true"}),
    case(env={"ETCD_HEARTBEAT_INTERVAL": "abc"}),
    case(env={"ETCD_VERSION": "3.4"}),
    case(env={"ETCD_LISTEN_CLIENT_URLS": "http://10.0.0.1:2379"}),
    case("--name", "x", env={"ETCD_NAME": "y"}),
    case("--name", "x", env={"ETCD_NAME": ""}),
    # config file
    case("--config-file", "{file}", file="name: cfg"),
    case("--config-file", "{file}", file="Name: upper"),
    case("--config-file", "{file}", file="bogus-key: 1"),
    case("--config-file", "{file}", file="pre-vote: yes"),
    case("--config-file", "{file}", file="heartbeat-interval: 100.0"),
    case("--config-file", "{file}", file="grpc-keepalive-min-time: 5000000000"),
    case("--config-file", "{file}", file="log-outputs: [stderr]"),
    case("--config-file", "{file}", file="listen-client-urls: http://10.0.0.1:2379"),
    case("--config-file", "{file}", file="client-transport-security:\n  cert-file: x"),
    case("--config-file", "{file}", file="grpc-keepalive-min-time: 5s"),
    case("--config-file", "{file}", file="log-outputs: stderr"),
    case("--config-file", "{file}", file="name: 123"),
    case("--config-file", "{file}", file='pre-vote: "true"'),
    case("--config-file", "{file}", file="heartbeat-interval: -1"),
    case("--config-file", "{file}", file="initial-cluster-state: bogus"),
    case("--config-file", "{file}", file="listen-client-urls: foo"),
    case("--config-file", "{file}", file="client-transport-security: 5"),
    case("--config-file", "{file}", file="auto-compaction-retention: 5"),
    case("--config-file", "{file}", file="election-timeout: 300"),
    case("--config-file", "{file}", file="name: [x"),
    case("--config-file", "{file}", file="name: n"),
    case("--config-file", "{file}", file="name: 1:30"),
    case("--config-file", "{file}", file="max-wals: 1e3"),
    case("--config-file", "{file}", file="max-wals: 1:30"),
    case("--config-file", "{file}", file="discovery-fallback: bogus"),
    case("--config-file", "{file}", file="discovery-fallback: bogus\nlogger: bogus"),
    case("--config-file", "{file}", file="cors: foo"),
    case("--config-file", "{file}", file="cors: off"),
    case("--config-file", "{file}", "--election-timeout=1", file="name: cfg"),
    case("--config-file", "{file}", "--heartbeat-interval=abc", file="name: cfg"),
    case("--config-file", "{file}", env={"ETCD_HEARTBEAT_INTERVAL": "abc"}, file="name: c"),
    case(env={"ETCD_CONFIG_FILE": "{file}"}, file="election-timeout: 300"),
    case("--config-file", "/nonexistent/kvorum.yml"),
]


def outcome_of_etcd(argv: list[str], env: dict[str, str], cwd: Path, add_poison: bool) -> str:
    done = run_etcd([POISON, *argv] if add_poison else argv, env, cwd)
    if done.returncode == 0:
        return "exit 0"
    # With --logger=zap the message is JSON (quotes escaped) and may go to stdout.
    if POISONED.search(done.stdout + done.stderr):
        return ACCEPT
    return f"refuse {done.returncode}"


def outcome_of_kvorum(argv: list[str], env: dict[str, str], add_poison: bool) -> str:
    try:
        invocation = parse_invocation([POISON, *argv] if add_poison else argv, env)
        if invocation.config is None:
            return "exit 0"
        verify_bootstrap(invocation.config)
    except ConfigError as err:
        assert "\n" not in err.message
        if "auto-compaction-mode 'poison'" in err.message:
            return ACCEPT
        return f"refuse {err.exit_code}"
    return ACCEPT


@requires_etcd
@pytest.mark.parametrize("c", CASES, ids=lambda c: " ".join(c.argv) or repr(c.env) or "none")
def test_accepts_and_refuses_like_etcd(c: Case, tmp_path: Path) -> None:
    argv, env = c.materialise(tmp_path)
    # A config file carries the poison itself (see Case.materialise).
    expected = outcome_of_etcd(argv, env, tmp_path, add_poison=c.config_file is None)
    assert outcome_of_kvorum(argv, env, add_poison=c.config_file is None) == expected


def _bootstrap_cases(client: int, peer: int) -> list[list[str]]:
    peer_url = f"http://127.0.0.1:{peer}"
    listen = [
        f"--listen-client-urls=http://127.0.0.1:{client}",
        f"--advertise-client-urls=http://127.0.0.1:{client}",
        f"--listen-peer-urls={peer_url}",
        f"--initial-advertise-peer-urls={peer_url}",
    ]
    return [
        [*listen, "--name=foo", f"--initial-cluster=bar={peer_url}"],
        [*listen, "--name=foo", f"--initial-cluster=foo=http://localhost:{peer}"],
        [*listen, "--name=foo", f"--initial-cluster=foo={peer_url},foo=http://127.0.0.1:1"],
        [*listen, "--initial-cluster=default"],
        [*listen, f"--initial-cluster=default={peer_url},other={peer_url}"],
        [*listen, "--name=n3", "--initial-cluster-state=existing", "--initial-cluster=n1="],
        [*listen, f"--initial-cluster=default={peer_url}", "--auto-compaction-retention=1x"],
    ]


@requires_etcd
@pytest.mark.parametrize("index", range(len(_bootstrap_cases(1, 2))))
def test_bootstrap_refusals_match_etcd(index: int, tmp_path: Path) -> None:
    argv = [*_bootstrap_cases(free_port(), free_port())[index], f"--data-dir={tmp_path / 'd'}"]
    expected = outcome_of_etcd(argv, {}, tmp_path, add_poison=False)
    assert expected.startswith("refuse")  # etcd stops on these before serving anything
    assert outcome_of_kvorum(argv, {}, add_poison=False) == expected


# ---------------------------------------------------------------- seeded random cases

_RANDOM_ROUNDS = 1000 if os.environ.get("KVORUM_LONG") else 25
_FLAG_NAMES = [
    "name",
    "heartbeat-interval",
    "election-timeout",
    "pre-vote",
    "snapshot-count",
    "listen-client-urls",
    "advertise-client-urls",
    "listen-peer-urls",
    "initial-advertise-peer-urls",
    "initial-cluster-state",
    "quota-backend-bytes",
    "grpc-keepalive-timeout",
    "logger",
    "log-outputs",
    "log-output",
    "log-level",
    "cors",
    "host-whitelist",
    "proxy",
    "discovery",
    "discovery-srv",
    "initial-cluster",
    "max-concurrent-streams",
    "backend-batch-limit",
    "debug",
    "v",
    "listen-metrics-urls",
    "auto-compaction-retention",
    "enable-v2",
    "discovery-fallback",
    "cipher-suites",
    "bogus",
]
_FLAG_VALUES = [
    "",
    "0",
    "1",
    "-1",
    "100",
    "1000",
    "0x10",
    "010",
    "abc",
    "true",
    "false",
    "T",
    "5s",
    "1h",
    "-2m",
    ".5s",
    "http://127.0.0.1:1",
    "http://10.0.0.1:2379",
    "http://a.example:1",
    "https://[::1]:5",
    "unix://x:1",
    "http://:1",
    "http://[",
    "foo",
    "new",
    "existing",
    "zap",
    "capnslog",
    "stderr",
    "stdout",
    "default",
    "stderr,stdout",
    "debug",
    "warn",
    "*",
    "on",
    "off",
    "exit",
    "proxy",
    "n=http://127.0.0.1:1",
    "http://1.2.3.4:5/x",
    "a,b",
    "--name",
]
_FILE_VALUES = [
    "", "0", "1", "-1", "100", "1.5", "100.0", "0x10", "1e3", "abc", "true", "yes", "n",
    "'true'", "'100'", "null", "5s", "[]", "[stderr]", "[default, stdout]", "[1]", "{}",
    "{cert-file: x}", "{auto-tls: 1}", "http://127.0.0.1:1", "http://10.0.0.1:2379", "foo",
    "existing", "zap", "'*'", "on", "'off'", "n=http://127.0.0.1:1", "1:30", "4294967296",
]  # fmt: skip


def _random_case(rng: random.Random) -> Case:
    kind = rng.choice(("flags", "env", "file"))
    if kind == "file":
        keys = [*_FLAG_NAMES, "client-transport-security", "Name"]
        lines = [
            f"{rng.choice(keys)}: {rng.choice(_FILE_VALUES)}" for _ in range(rng.randint(1, 3))
        ]
        return case("--config-file", "{file}", file="\n".join(lines))
    argv: list[str] = []
    for _ in range(rng.randint(0 if kind == "env" else 1, 3)):
        flag, value = f"-{rng.choice(('', '-'))}{rng.choice(_FLAG_NAMES)}", rng.choice(_FLAG_VALUES)
        argv += rng.choice(([f"{flag}={value}"], [flag, value], [flag]))
    env = {}
    if kind == "env":
        for _ in range(rng.randint(1, 3)):
            name = rng.choice([*_FLAG_NAMES, "version"])
            env["ETCD_" + name.upper().replace("-", "_")] = rng.choice(_FLAG_VALUES)
    return case(*argv, env=env)


@requires_etcd
@pytest.mark.parametrize("seed", [20261121])
def test_random_cases_match_etcd(seed: int, tmp_path: Path) -> None:
    rng = random.Random(seed)
    for round_ in range(_RANDOM_ROUNDS):
        c = _random_case(rng)
        argv, env = c.materialise(tmp_path)
        add_poison = c.config_file is None
        expected = outcome_of_etcd(argv, env, tmp_path, add_poison=add_poison)
        got = outcome_of_kvorum(argv, env, add_poison=add_poison)
        assert got == expected, f"seed {seed} round {round_}: {c}"
