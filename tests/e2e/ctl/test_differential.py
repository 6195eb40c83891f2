"""kvorumctl against the real etcdctl 3.4 on the same real etcd: stdout, stderr and exit code
must match byte for byte (see ``helpers.py`` for how runs are paired and what is masked)."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from kvorum.testing import ETCD, ETCDCTL, Cluster, binary_for
from kvorum.testing.ports import free_ports
from tests.e2e.ctl.helpers import assert_same_behaviour, etcdctl, kvorumctl, mask

pytestmark = pytest.mark.skipif(
    shutil.which(ETCD) is None or shutil.which(ETCDCTL) is None,
    reason="etcd/etcdctl 3.4 not installed (run scripts/ensure-debian-packages)",
)

FORMATS = ("simple", "json", "fields", "protobuf", "table")
TEXT_FORMATS = ("simple", "json", "fields")
DATA: list[tuple[bytes, bytes]] = [
    (b"a", b"1"),
    (b"b", b"2"),
    (b"c/x", b"3"),
    (b"c/y", b"value with spaces"),
    (b'q"uote', b"tab\there\nnewline"),
    ("ü".encode(), "日本".encode()),
    (b"bin\xff", b"\x01%d%%\x7f"),
]


# Each case runs on real etcd and on kvorum: on either, etcdctl's output is the reference.
TARGETS = ("etcd", "kvorum")


@pytest.fixture(scope="module", params=TARGETS)
def target(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture(scope="module")
def ep(target: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """``--endpoints=<url>`` of a fresh 1-member cluster of ``target`` holding ``DATA``."""
    command = binary_for(target)
    if shutil.which(command[0]) is None:
        pytest.skip(f"{command[0]} is not installed")
    cluster = Cluster(command, 1, base_dir=tmp_path_factory.mktemp(f"ctl-{target}"))
    cluster.start()
    try:
        flag = f"--endpoints={cluster.member(0).client_url}"
        for key, value in DATA:
            done = etcdctl([flag, "put", key, value])
            assert done.rc == 0, done
        yield flag
    finally:
        cluster.stop()


GET_CASES = [
    ["get", "a"],
    ["get", "a", "--hex"],
    ["get", "c", "--prefix"],
    ["get", "", "--prefix", "--sort-by=value", "--order=descend"],
    ["get", "a", "--from-key", "--limit", "2"],
    ["get", "a", "--keys-only"],
    ["get", "c/x", "--print-value-only"],
    ["get", "c/x", "c/z"],
    ["get", "c/", "--prefix", "--sort-by=MODIFY", "--order=ASCEND", "--consistency=s"],
    ["get", "b", "--from-key", "--order=descend", "-wjson"],
    ["get", 'q"uote'],
    ["get", "ü"],
    ["get", b"bin\xff"],
    ["get", "nokey"],
]


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("case", GET_CASES, ids=lambda c: " ".join(map(os.fsdecode, c)))
def test_get(ep: str, case: list[str | bytes], fmt: str) -> None:
    assert_same_behaviour([ep, *case, f"--write-out={fmt}"])


@pytest.mark.parametrize(
    "case",
    [
        ["get"],
        ["get", "a", "--prefix", "--from-key"],
        ["get", "a", "b", "--prefix"],
        ["get", "a", "--order=sideways"],
        ["get", "a", "--sort-by=size"],
        ["get", "a", "--consistency=x"],
        ["get", "a", "--limit=x"],
        ["get", "a", "--rev=99999"],
        ["get", "a", "--print-value-only", "-w", "json"],
        ["get", "a", "-w", "bogus"],
        ["get", "a", "-w"],
        ["get", "--bogus", "a"],
        ["get", "-z", "a"],
        ["get", "a", "--prefix=maybe"],
        ["--bogus", "get", "a"],
        ["gett", "a"],
        ["bogus"],
        ["get", "--help"],
        ["help", "put"],
        ["del", "-h"],
        ["member"],
        ["member", "list", "--help"],
        ["endpoint", "--help"],
        ["endpoint", "status", "-h"],
        ["endpoint", "hashkv", "--help"],
        ["txn", "--help"],
        ["compaction", "--help"],
        ["version", "--help"],
        ["version"],
        ["version", "extra", "-w", "json"],
        ["put"],
        ["put", "k", "v", "--ignore-value"],
        ["put", "k", "v", "--lease=zz"],
        ["put", "p5", "v", "--lease=1234"],
        ["put", "p3"],
        ["del", "nokey", "--prev-kv", "-w", "json"],
        ["del"],
        ["del", "a", "b", "c"],
        ["del", "a", "--prefix", "--from-key"],
        ["compaction"],
        ["compaction", "x"],
        ["compaction", "99999"],
        ["txn", "extra"],
        ["del", "a", "b", "--prefix"],
        ["watch"],
        ["watch", "a", "b", "--prefix"],
        ["watch", "--help"],
        [],
        ["--help"],
        ["help"],
        ["help", "member", "list"],
        ["auth"],
        ["user", "--help"],
        ["member", "add"],
        ["member", "add", "x", "y", "http://a"],
        ["member", "add", "x"],
        ["member", "remove"],
        ["member", "remove", "zz"],
        ["member", "remove", "ffffffffffffffffff"],
        ["member", "remove", "1234"],
        ["member", "update", "1234"],
        ["member", "update", "1234", "--peer-urls=http://127.0.0.1:9"],
        ["member", "promote", "1234"],
        ["member", "promote", "--help"],
        ["member", "add", "--help"],
        ["member", "update", "--help"],
    ],
    ids=lambda c: " ".join(c),
)
def test_errors_and_usage(ep: str, case: list[str]) -> None:
    assert_same_behaviour([ep, *case])


@pytest.mark.parametrize("fmt", TEXT_FORMATS)
@pytest.mark.parametrize(
    ("case", "setup", "stdin"),
    [
        (["put", "p1", "v1"], [], b""),
        (["put", "p1", "v2", "--prev-kv"], [], b""),
        (["put", "p2", "--ignore-value", "--prev-kv"], [["put", "p2", "old"]], b""),
        (["put", "p3"], [], b"from stdin\n"),
        (["put", "--", "p4", "-dash"], [], b""),
        (["del", "d", "--prefix", "--prev-kv"], [["put", "d1", "x"], ["put", "d2", "y"]], b""),
        (["del", "d1", "d2"], [["put", "d1", "x"], ["put", "d2", "y"]], b""),
        (["del", "zz", "--from-key"], [["put", "zz1", "x"]], b""),
    ],
    ids=lambda c: " ".join(map(str, c)) if isinstance(c, list) else None,
)
def test_put_del(ep: str, case: list[str], setup: list[list[str]], stdin: bytes, fmt: str) -> None:
    steps = [[ep, *s] for s in setup]
    assert_same_behaviour([ep, *case, "-w", fmt], stdin=stdin, setup=steps, writes=True)


TXNS = [
    b'mod("t1") > "0"\n\nput t1 "hello world"\nget t1\ndel nokey --prev-kv\n\nput x y\n\n',
    b'value("t1") = "nope"\n\nput t1 a\n\nget t1 --prefix --limit=1\nput t2 b --prev-kv\n\n',
    b"\n\ndel t1 --prev-kv\n\n",
]
# Rejected before anything is sent: the output format does not matter, the store is unchanged.
BAD_TXNS = [
    b'version("t1") != "0"\ncreate("t1") < "999999"\n\nget t1 -w json\n\n\n',
    b"bad\n",
    b"mod(t1) > 0\n",
    b'foo("t1") = "1"\n',
    b'mod("t1") = "x"\n',
    b'mod("t1") = "1"',
    b"\nput a\n",
    b"\nget\n",
    b"\nput a b --lease=zz\n",
    b"\nget 'foo' x\n\n\n",
    b'\nget "t\\x31"\n\n\n',
]


@pytest.mark.parametrize("fmt", TEXT_FORMATS)
@pytest.mark.parametrize("script", TXNS, ids=lambda s: s.decode()[:40])
def test_txn(ep: str, script: bytes, fmt: str) -> None:
    assert_same_behaviour([ep, "txn", "-w", fmt], stdin=script, setup=[[ep, "put", "t1", "v"]])


@pytest.mark.parametrize("script", BAD_TXNS, ids=lambda s: s.decode()[:40])
def test_txn_rejected(ep: str, script: bytes) -> None:
    assert_same_behaviour([ep, "txn"], stdin=script)


def test_txn_interactive(ep: str) -> None:
    script = b'ver("t1") > "0"\n\nget t1\n\nput zz x\n\n'
    assert_same_behaviour([ep, "txn", "-i"], stdin=script, setup=[[ep, "put", "t1", "v"]])


def test_txn_protobuf(ep: str) -> None:
    # Read-only, so every run prints the same bytes.
    assert_same_behaviour([ep, "txn", "-w", "protobuf"], stdin=b"\n\nget a\n\n")


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize(
    "case",
    [
        ["member", "list"],
        ["endpoint", "status"],
        ["endpoint", "status", "--cluster"],
        ["endpoint", "hashkv"],
        ["endpoint", "hashkv", "--cluster", "--rev=3"],
    ],
    ids=" ".join,
)
def test_cluster_commands(ep: str, case: list[str], fmt: str) -> None:
    assert_same_behaviour([ep, *case, "-w", fmt])


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("case", [["endpoint", "health"], ["endpoint", "health", "--cluster"]],
                         ids=" ".join)  # fmt: skip
def test_endpoint_health(ep: str, case: list[str], fmt: str) -> None:
    assert_same_behaviour([ep, *case, "-w", fmt], durations=True)


@pytest.mark.parametrize(
    ("args", "env"),
    [
        (["get", "a"], {"ETCDCTL_WRITE_OUT": "json"}),
        (["get", "a"], {"ETCDCTL_HEX": "true"}),
        (["get", "a"], {"ETCDCTL_HEX": "maybe"}),
        (["get", "a"], {"ETCDCTL_BOGUS": "1"}),
        (["get"], {"ETCDCTL_BOGUS": "1"}),
        (["version"], {"ETCDCTL_BOGUS": "1"}),
        (["get", "a", "-w", "fields"], {"ETCDCTL_WRITE_OUT": "json"}),
        (["get", "a"], {"ETCDCTL_DIAL_TIMEOUT": "x"}),
    ],
    ids=lambda v: (
        " ".join(v) if isinstance(v, list) else ",".join(f"{k}={x}" for k, x in v.items())
    ),
)
def test_environment(ep: str, args: list[str], env: dict[str, str]) -> None:
    url = ep.removeprefix("--endpoints=")
    # The endpoints come from the environment too; a flag next to it is tested below.
    assert_same_behaviour(args, env={"ETCDCTL_ENDPOINTS": url, **env})


def test_environment_shadowed_by_flag_is_fatal(ep: str) -> None:
    url = ep.removeprefix("--endpoints=")
    assert_same_behaviour([ep, "get", "a"], env={"ETCDCTL_ENDPOINTS": url})


def test_unreachable_endpoint_times_out_like_etcdctl(ep: str) -> None:
    (port,) = free_ports(1)
    dead = f"--endpoints=127.0.0.1:{port}"
    assert_same_behaviour([dead, "--command-timeout=500ms", "get", "a"])
    assert_same_behaviour([f"{ep},127.0.0.1:{port}", "--command-timeout=500ms", "endpoint",
                           "status"])  # fmt: skip


@pytest.mark.parametrize("server", TARGETS)
def test_compaction(tmp_path: Path, server: str) -> None:
    # Its own cluster: compacting would break the revisions other cases read.
    cluster = Cluster(binary_for(server), 1, base_dir=tmp_path)
    cluster.start()
    try:
        ep = f"--endpoints={cluster.member(0).client_url}"
        for i in range(6):
            assert etcdctl([ep, "put", "k", str(i)]).rc == 0
        a = etcdctl([ep, "compaction", "3"])
        b = kvorumctl([ep, "compaction", "4", "--physical"])
        assert (a.rc, a.out, a.err) == (0, b"compacted revision 3\n", b"")
        assert (b.rc, b.out, b.err) == (0, b"compacted revision 4\n", b"")
        cases = (
            ["compaction", "2"],
            ["get", "k", "--rev=2"],
            ["get", "k", "--rev=5"],
            ["watch", "k", "--rev=1", "-w", "json"],  # canceled by the server: ends by itself
            ["watch", "k", "--rev=2", "-w", "fields"],
        )
        for case in cases:
            assert_same_behaviour([ep, *case])
    finally:
        cluster.stop()


def test_console_script(ep: str) -> None:
    script = Path(sys.executable).parent / "kvorumctl"
    if not script.exists():
        pytest.skip("kvorumctl is not installed (pip install -e .)")
    env = {k: v for k, v in os.environ.items() if not k.startswith("ETCDCTL_")}
    done = subprocess.run(
        [str(script), ep, "get", "c", "--prefix", "-w", "fields"],
        capture_output=True, env=env, timeout=30, check=False,
    )  # fmt: skip
    ref = etcdctl([ep, "get", "c", "--prefix", "-w", "fields"])
    assert (done.returncode, done.stdout, mask(done.stderr)) == (ref.rc, ref.out, mask(ref.err))


@pytest.fixture(scope="module")
def lease_id(ep: str) -> str:
    """A long-lived lease with a key attached, as etcdctl prints its id (hex)."""
    done = etcdctl([ep, "lease", "grant", "600"])
    assert done.rc == 0, done
    lease = done.out.split()[1].decode()
    assert etcdctl([ep, "put", "leased", "v", f"--lease={lease}"]).rc == 0
    return lease


@pytest.mark.parametrize("fmt", FORMATS)
def test_lease_grant(ep: str, fmt: str) -> None:
    # The A/B/C rule holds for lease ids because both servers draw them from a member's
    # request-id generator, which grows by the same step for the same requests.
    assert_same_behaviour([ep, "lease", "grant", "600", "-w", fmt], writes=True, hex_ids=True)


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("case", [["keep-alive", "--once"], ["timetolive", "--keys"]], ids=" ".join)
def test_lease_on_existing(ep: str, lease_id: str, case: list[str], fmt: str) -> None:
    # Renewing first pins the remaining TTL for the second it takes to compare.
    renew = [ep, "lease", "keep-alive", "--once", lease_id]
    assert_same_behaviour([ep, "lease", *case, lease_id, "-w", fmt], setup=[renew])


@pytest.mark.parametrize(
    "case",
    [
        ["lease"],
        ["lease", "grant"],
        ["lease", "grant", "x"],
        ["lease", "revoke"],
        ["lease", "revoke", "zz"],
        ["lease", "revoke", "1234"],
        ["lease", "timetolive"],
        ["lease", "timetolive", "1234"],
        ["lease", "timetolive", "1234", "-w", "json"],
        ["lease", "keep-alive"],
        ["lease", "keep-alive", "--once", "1234"],
        ["lease", "grant", "--help"],
        ["alarm", "list"],
        ["alarm", "list", "-w", "json"],
        ["alarm", "list", "-w", "table"],
        ["alarm", "disarm"],
        ["alarm", "disarm", "-w", "json"],
        ["alarm"],
        ["defrag"],
        ["defrag", "--cluster"],
        ["defrag", "-w", "json"],
        ["defrag", "--help"],
    ],
    ids=" ".join,
)
def test_lease_alarm_defrag(ep: str, case: list[str]) -> None:
    assert_same_behaviour([ep, *case])


def test_lease_list(ep: str, lease_id: str) -> None:
    for fmt in TEXT_FORMATS:
        assert_same_behaviour([ep, "lease", "list", "-w", fmt])


def test_defrag_unreachable_member(ep: str) -> None:
    (port,) = free_ports(1)
    assert_same_behaviour([f"{ep},127.0.0.1:{port}", "--command-timeout=300ms", "defrag"])


@pytest.mark.parametrize("server", TARGETS)
@pytest.mark.parametrize("fmt", ["simple", "json"])
def test_member_add_and_remove_learner(tmp_path: Path, fmt: str, server: str) -> None:
    """Membership changes on a cluster of their own; new member ids are random, so each
    kvorumctl output is compared with etcdctl's after swapping the ids in."""
    cluster = Cluster(binary_for(server), 1, base_dir=tmp_path)
    cluster.start()
    try:
        ep = f"--endpoints={cluster.member(0).client_url}"
        ports = free_ports(2)
        results = []
        for tool, port in zip((etcdctl, kvorumctl), ports, strict=True):
            add = [ep, "member", "add", "newbie", f"--peer-urls=http://127.0.0.1:{port}",
                   "--learner", "-w", fmt]  # fmt: skip
            added = tool(add)
            assert added.rc == 0, added
            new_id = _new_member_id(cluster, ep)
            removed = tool([ep, "member", "remove", f"{new_id:x}", "-w", fmt])
            assert removed.rc == 0, removed
            results.append((new_id, added, removed))
        (id_a, added_a, removed_a), (id_b, added_b, removed_b) = results
        for a, b in ((added_a, added_b), (removed_a, removed_b)):
            assert (b.rc, b.err) == (a.rc, a.err)
            assert _membership_masked(b.out, id_b, ports[1]) == _membership_masked(
                a.out, id_a, ports[0]
            )
    finally:
        cluster.stop()


def _new_member_id(cluster: Cluster, ep: str) -> int:
    listed = etcdctl([ep, "member", "list", "-w", "json"]).out.decode()
    ids = [int(x) for x in re.findall(r'"ID":(\d+)', listed)]
    (new,) = [i for i in ids if i != int(cluster.status(0).header.member_id)]
    return new


def _membership_masked(data: bytes, new_id: int, port: int) -> object:
    """The output with the new member's id and port masked and member order (which follows
    the random ids) made canonical."""
    text = data.decode()
    text = text.replace(str(new_id), "-1")  # still a JSON number
    for form in (f"{new_id:16x}", f"{new_id:x}"):
        text = text.replace(form, "<id>")
    text = text.replace(str(port), "<port>")
    if text.startswith("{"):
        doc = json.loads(text)
        if "members" in doc:
            doc["members"] = sorted(doc["members"], key=lambda m: json.dumps(m, sort_keys=True))
        return doc
    return re.sub(
        r'ETCD_INITIAL_CLUSTER="([^"]*)"',
        lambda m: 'ETCD_INITIAL_CLUSTER="' + ",".join(sorted(m.group(1).split(","))) + '"',
        text,
    )


@pytest.mark.parametrize("target", TARGETS)
def test_authentication(tmp_path: Path, target: str) -> None:
    # Its own cluster: with auth on, every other case would need credentials.
    cluster = Cluster(binary_for(target), 1, base_dir=tmp_path)
    cluster.start()
    try:
        ep = f"--endpoints={cluster.member(0).client_url}"
        assert_same_behaviour([ep, "--user=root:pw", "get", "a"])  # auth off: logged, ignored
        for step in (["user", "add", "root:pw"], ["role", "add", "root"],
                     ["user", "grant-role", "root", "root"], ["auth", "enable"]):  # fmt: skip
            done = etcdctl([ep, *step])
            assert done.rc == 0, done
        assert_same_behaviour([ep, "--user=root:pw", "put", "a", "1", "-w", "json"], writes=True)
        for case in (["--user=root:pw", "get", "a"], ["--user=root", "--password=pw", "get", "a"],
                     ["--user=root:bad", "get", "a"], ["get", "a"]):  # fmt: skip
            assert_same_behaviour([ep, *case])
    finally:
        cluster.stop()


# Watches never end by themselves: both tools run until kvorumctl has printed as much as
# etcdctl (or this long), then are killed.
WATCH_SETTLE_S = 1.0
WATCH_DEADLINE_S = 20.0
WATCH_POLL_S = 0.1
WATCH_CASES = (
    ["watch", "", "--prefix", "--rev=1", "--prev-kv"],
    ["watch", "c/x", "c/z", "--rev=1"],
)


def test_watch_history(ep: str, tmp_path: Path) -> None:
    """Watches from revision 1 print the stored history and then wait; the two tools run side
    by side and must print the same bytes."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("ETCDCTL_")}
    env["ETCDCTL_API"] = "3"
    runs = []
    for i, (fmt, case) in enumerate([(f, WATCH_CASES[0]) for f in FORMATS[:4]]
                                    + [("simple", WATCH_CASES[1])]):  # fmt: skip
        args = [ep, *case, "-w", fmt]
        pair = []
        tools = (("etcdctl", [ETCDCTL]), ("kvorumctl", [sys.executable, "-m", "kvorum.ctl"]))
        for name, cmd in tools:
            out_path, err_path = tmp_path / f"{i}.{name}.out", tmp_path / f"{i}.{name}.err"
            with out_path.open("wb") as out, err_path.open("wb") as err:
                proc = subprocess.Popen([*cmd, *args], stdout=out, stderr=err, env=env)
            pair.append((proc, out_path, err_path))
        runs.append((args, pair))
    try:
        time.sleep(WATCH_SETTLE_S)
        deadline = time.monotonic() + WATCH_DEADLINE_S
        while time.monotonic() < deadline and any(
            theirs[1].stat().st_size > ours[1].stat().st_size for _, (theirs, ours) in runs
        ):
            time.sleep(WATCH_POLL_S)
    finally:
        for _, pair in runs:
            for proc, _, _ in pair:
                proc.kill()  # by its own handle: only the processes this test started
                proc.wait()
    for args, (theirs, ours) in runs:
        expected = (theirs[1].read_bytes(), theirs[2].read_bytes())
        assert expected[0], f"etcdctl printed nothing for {args}"
        assert (ours[1].read_bytes(), ours[2].read_bytes()) == expected, args
