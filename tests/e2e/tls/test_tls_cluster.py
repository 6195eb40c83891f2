"""TLS on both links with client-certificate auth, driven by the real etcdctl.

The same 3-member scenario runs against real etcd 3.4 and kvorum: what works (put, get, member
list over https) and how etcdctl fails when refused (no certificate, a certificate from another
CA, plain text on the TLS port) must be the same. Then, against kvorum only: a member holding a
peer certificate from another CA cannot join, certificates are reloaded when their files are
replaced, and ``--cipher-suites`` decides what both links negotiate.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

from kvorum.testing import ETCD, Cluster, binary_for, free_ports
from tests.e2e.tls.helpers import (
    Certs,
    bare_etcdctl,
    last_line,
    make_certs,
    probe,
    require_etcd,
    require_tools,
)

pytestmark = pytest.mark.timeout(180)

STOP_TIMEOUT_S = 10.0
JOIN_ATTEMPT_TIMEOUT_S = 30.0
RELOAD_TIMEOUT_S = 10.0
POLL_S = 0.1


def kvorum_command() -> list[str]:
    command = binary_for("kvorum")
    require_tools(command[0])
    return command


def refusals(c: Cluster, certs: Certs) -> dict[str, tuple[int, str]]:
    """etcdctl's exit status and last line for each way of being refused by member 0."""
    https = c.member(0).client_url
    plain = https.replace("https://", "http://")
    ca = f"--cacert={certs.path('ca.pem')}"
    cases = {
        "no client certificate": bare_etcdctl(https, ca, "get", "k"),
        "certificate from another CA": bare_etcdctl(
            https, ca, f"--cert={certs.path('rogue.pem')}", f"--key={certs.path('rogue-key.pem')}",
            "get", "k",
        ),
        "plain text on the TLS port": bare_etcdctl(plain, "get", "k"),
    }  # fmt: skip
    return {what: (r.returncode, last_line(r.stderr)) for what, r in cases.items()}


def scenario(c: Cluster, certs: Certs) -> dict[str, object]:
    """What the TLS cluster does for etcdctl; the same for etcd and kvorum."""
    put = c.etcdctl("put", "greeting", "hello")
    got = c.etcdctl("get", "greeting", endpoint=2)
    listed = c.etcdctl("member", "list")
    assert listed.returncode == 0, listed.stderr
    rows = [line.split(", ") for line in listed.stdout.splitlines()]
    return {
        "put": put,
        "get": got,
        # name and the schemes of the peer and client URLs (ids and ports differ by design)
        "member list": sorted((r[2], r[3].split(":")[0], r[4].split(":")[0]) for r in rows),
        "refused": refusals(c, certs),
    }


def test_three_members_with_tls_on_both_links_behave_as_etcd(tmp_path: Path) -> None:
    require_etcd()
    outcomes: dict[str, dict[str, object]] = {}
    for target, binary in (("etcd", [ETCD]), ("kvorum", kvorum_command())):
        certs = make_certs(tmp_path / target / "certs")
        with Cluster(binary, 3, base_dir=tmp_path / target, tls=certs.cluster_tls()) as c:
            assert c.member(0).spec.peer_url.startswith("https://")
            outcomes[target] = scenario(c, certs)
    kvorum, etcd = outcomes["kvorum"], outcomes["etcd"]
    assert kvorum["put"] == (0, "OK\n", "")
    assert kvorum["get"] == (0, "greeting\nhello\n", "")
    expected_members = [(f"infra{i}", "https", "https") for i in range(3)]
    assert kvorum["member list"] == expected_members
    # Every refusal: etcdctl exits 1 after its dial timeout, as it does against etcd.
    for what, (status, line) in dict(kvorum["refused"]).items():  # type: ignore[call-overload]
        assert status == 1, (what, line)
        assert line == "Error: context deadline exceeded", (what, line)
    assert kvorum == etcd


#: What a member that cannot learn the membership says before it exits 1.
CANNOT_JOIN = {
    "etcd": "cannot fetch cluster info from peer urls",
    "kvorum": "could not get the cluster's membership",
}


def stop(proc: subprocess.Popen[bytes]) -> None:
    """End a member this test started, by its pid: SIGTERM, then SIGKILL after a bound."""
    if proc.poll() is not None:
        return
    os.kill(proc.pid, signal.SIGTERM)
    try:
        proc.wait(STOP_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(STOP_TIMEOUT_S)


def spawn(command: list[str], log_path: Path) -> subprocess.Popen[bytes]:
    with log_path.open("wb") as log:
        return subprocess.Popen(
            command, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )


@pytest.mark.parametrize("target", ["etcd", "kvorum"])
def test_member_with_a_peer_certificate_from_another_ca_cannot_join(
    tmp_path: Path, target: str
) -> None:
    """The rogue is refused; the same member with the cluster's certificates then joins."""
    binary = [ETCD] if target == "etcd" else kvorum_command()
    if target == "etcd":
        require_etcd()
    certs = make_certs(tmp_path / "certs")
    with Cluster(binary, 3, base_dir=tmp_path, tls=certs.cluster_tls()) as c:
        peer_port, client_port = free_ports(2)
        peer, client = f"https://127.0.0.1:{peer_port}", f"https://127.0.0.1:{client_port}"
        # As etcd, a member is only added once the leader has seen every member active for a
        # while ("etcdserver: unhealthy cluster" until then): retry, bounded.
        deadline = time.monotonic() + JOIN_ATTEMPT_TIMEOUT_S
        while True:
            added = c.etcdctl("member", "add", "rogue", f"--peer-urls={peer}")
            if added.returncode == 0 or time.monotonic() > deadline:
                break
            assert "unhealthy cluster" in added.stderr, added.stderr
            time.sleep(0.5)
        assert added.returncode == 0, added.stderr
        initial = ",".join(f"{m.name}={m.spec.peer_url}" for m in c.members)
        # The rogue trusts its own CA and presents a certificate from it on the peer link.

        def command(ca: str, cert: str, data_dir: str) -> list[str]:
            return [
                *binary,
                "--name", "rogue",
                "--listen-peer-urls", peer, "--initial-advertise-peer-urls", peer,
                "--listen-client-urls", client, "--advertise-client-urls", client,
                "--initial-cluster", f"{initial},rogue={peer}",
                "--initial-cluster-state", "existing",
                "--data-dir", str(tmp_path / data_dir),
                "--cert-file", certs.path("server.pem"),
                "--key-file", certs.path("server-key.pem"),
                "--trusted-ca-file", certs.path("ca.pem"), "--client-cert-auth",
                "--peer-cert-file", certs.path(f"{cert}.pem"),
                "--peer-key-file", certs.path(f"{cert}-key.pem"),
                "--peer-trusted-ca-file", certs.path(ca), "--peer-client-cert-auth",
            ]  # fmt: skip

        # The rogue trusts its own CA and presents a certificate from it on the peer link.
        log_path = tmp_path / "rogue.log"
        proc = spawn(command("rogue-ca.pem", "rogue", "rogue.etcd"), log_path)
        try:
            # It cannot even learn the membership: every peer refuses its handshake.
            status = proc.wait(JOIN_ATTEMPT_TIMEOUT_S)
        finally:
            if proc.poll() is None:
                os.kill(proc.pid, signal.SIGKILL)
                proc.wait(STOP_TIMEOUT_S)
        log_text = log_path.read_text()
        assert status == 1, log_text[-2000:]
        assert CANNOT_JOIN[target] in log_text, log_text[-2000:]
        # Raft traffic itself: each member's peer port refuses the rogue certificate, no
        # certificate at all, and one of the cluster's CA made for another address (etcd's
        # SAN check), and takes the cluster's own.
        for m in c.members:
            assert not probe(m.spec.peer_port, certs, cert="rogue").accepted
            assert not probe(m.spec.peer_port, certs, cert=None).accepted
            assert not probe(m.spec.peer_port, certs, cert="elsewhere").accepted
            assert probe(m.spec.peer_port, certs, cert="server").accepted
        # The cluster (three of four members, a quorum) stays healthy and takes writes.
        health = c.etcdctl("endpoint", "health")
        assert health.returncode == 0, health.stderr
        assert c.etcdctl("put", "after", "rogue") == (0, "OK\n", "")
        listed = c.etcdctl("member", "list").stdout
        statuses = sorted(line.split(", ")[1] for line in listed.splitlines())
        assert statuses == ["started", "started", "started", "unstarted"], listed

        # The same member with the cluster's certificate joins over TLS (the membership
        # fetched over the peer link, then raft) and serves what was written before.
        member_log = tmp_path / "member.log"
        proc = spawn(command("ca.pem", "server", "member.etcd"), member_log)
        try:
            deadline = time.monotonic() + JOIN_ATTEMPT_TIMEOUT_S
            while True:
                got = c.etcdctl("get", "after", endpoint=client)
                if got.returncode == 0 or time.monotonic() > deadline or proc.poll() is not None:
                    break
                time.sleep(POLL_S)
            assert got == (0, "after\nrogue\n", ""), member_log.read_text()[-2000:]
        finally:
            stop(proc)


def test_replaced_certificate_files_are_served_to_new_connections(tmp_path: Path) -> None:
    certs = make_certs(tmp_path / "certs")
    with Cluster(kvorum_command(), 1, base_dir=tmp_path, tls=certs.cluster_tls()) as c:
        spec = c.member(0).spec
        before = probe(spec.client_port, certs, alpn=["h2"])
        assert before.accepted, before.error
        new_serial = certs.rotate_server_cert()
        assert new_serial != before.server_serial

        def served(port: int, alpn: list[str]) -> int | None:
            deadline = time.monotonic() + RELOAD_TIMEOUT_S
            while True:
                seen = probe(port, certs, alpn=alpn)
                # gRPC may still be serving the old certificate for a connection whose
                # handshake began before the files were replaced: poll, bounded.
                if seen.server_serial == new_serial or time.monotonic() > deadline:
                    return seen.server_serial
                time.sleep(POLL_S)

        assert served(spec.client_port, ["h2"]) == new_serial
        assert served(spec.peer_port, []) == new_serial
        assert c.etcdctl("put", "after", "rotation") == (0, "OK\n", "")


def test_cipher_suites_decide_what_both_links_negotiate(tmp_path: Path) -> None:
    certs = make_certs(tmp_path / "certs")
    flags = ["-cipher-suites", "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256"]
    with Cluster(
        kvorum_command(), 1, base_dir=tmp_path, tls=certs.cluster_tls(), extra_flags=flags
    ) as c:
        spec = c.member(0).spec
        # On the peer link, a member's certificate (it names 127.0.0.1, as the SAN check wants).
        for port, cert, alpn in (
            (spec.client_port, "client", ["h2"]),
            (spec.peer_port, "server", []),
        ):
            listed = probe(
                port, certs, cert=cert, ciphers="ECDHE-ECDSA-AES128-GCM-SHA256", alpn=alpn
            )
            assert listed.accepted and listed.cipher == "ECDHE-ECDSA-AES128-GCM-SHA256", listed
            other = probe(
                port, certs, cert=cert, ciphers="ECDHE-ECDSA-AES256-GCM-SHA384", alpn=alpn
            )
            assert not other.accepted, (port, other)
        assert c.etcdctl("put", "k", "v") == (0, "OK\n", "")


def test_peer_cert_allowed_cn_refuses_other_names_from_the_same_ca(tmp_path: Path) -> None:
    certs = make_certs(tmp_path / "certs")
    flags = ["-peer-cert-allowed-cn", "infra"]
    with Cluster(
        kvorum_command(), 1, base_dir=tmp_path, tls=certs.cluster_tls(), extra_flags=flags
    ) as c:
        port = c.member(0).spec.peer_port
        assert probe(port, certs, cert="server").accepted  # CN infra
        assert not probe(port, certs, cert="other").accepted  # same CA, CN other
        assert "its certificate is not allowed" in c.member(0).log_tail()


def test_https_listen_without_a_certificate_fails_as_etcd(tmp_path: Path) -> None:
    require_etcd()
    client_port, peer_port = free_ports(2)
    flags = [
        "--listen-client-urls", f"https://127.0.0.1:{client_port}",
        "--advertise-client-urls", f"https://127.0.0.1:{client_port}",
        "--listen-peer-urls", f"http://127.0.0.1:{peer_port}",
        "--initial-advertise-peer-urls", f"http://127.0.0.1:{peer_port}",
        "--initial-cluster", f"default=http://127.0.0.1:{peer_port}",
    ]  # fmt: skip
    expected = (
        "TLS key/cert (--cert-file, --key-file) must be provided for client url "
        f"https://127.0.0.1:{client_port} with HTTPS scheme"
    )
    for name, binary in (("etcd", [ETCD]), ("kvorum", kvorum_command())):
        done = subprocess.run(
            [*binary, *flags, "--data-dir", str(tmp_path / name)],
            capture_output=True,
            stdin=subprocess.DEVNULL,
            timeout=60,
            check=False,
        )
        output = (done.stdout + done.stderr).decode()
        assert done.returncode == 1, (name, output[-1500:])
        assert expected in output, (name, output[-1500:])


def test_auto_tls_makes_self_signed_certificates_as_etcd(tmp_path: Path) -> None:
    """Both make <data-dir>/fixtures/{client,peer}/{cert,key}.pem and serve with them.

    Nothing can verify a self-signed certificate, so etcdctl must skip verification -- and
    etcdctl 3.4 only does with ``--insecure-transport=false`` beside
    ``--insecure-skip-tls-verify`` (alone, the latter still sends "bad certificate").
    """
    require_etcd()
    fixtures: dict[str, list[str]] = {}
    for name, binary in (("etcd", [ETCD]), ("kvorum", kvorum_command())):
        client_port, peer_port = free_ports(2)
        client, peer = f"https://127.0.0.1:{client_port}", f"https://127.0.0.1:{peer_port}"
        data_dir = tmp_path / f"{name}.etcd"
        command = [
            *binary, "--auto-tls", "--peer-auto-tls", "--data-dir", str(data_dir),
            "--listen-client-urls", client, "--advertise-client-urls", client,
            "--listen-peer-urls", peer, "--initial-advertise-peer-urls", peer,
            "--initial-cluster", f"default={peer}",
        ]  # fmt: skip
        proc = spawn(command, tmp_path / f"{name}.log")
        try:
            deadline = time.monotonic() + JOIN_ATTEMPT_TIMEOUT_S
            expected = [data_dir / "fixtures" / side / f for side in ("client", "peer")
                        for f in ("cert.pem", "key.pem")]  # fmt: skip
            while not all(p.exists() for p in expected) and time.monotonic() < deadline:
                time.sleep(POLL_S)
            skip_verify = ("--insecure-transport=false", "--insecure-skip-tls-verify")
            while True:
                put = bare_etcdctl(client, *skip_verify, "put", "k", "v")
                if put.returncode == 0 or time.monotonic() > deadline:
                    break
                time.sleep(POLL_S)
            assert put == (0, "OK\n", ""), (name, put)
            assert bare_etcdctl(client, "get", "k").returncode == 1  # verified: refused
        finally:
            stop(proc)
        fixtures[name] = sorted(
            str(p.relative_to(data_dir)) for p in (data_dir / "fixtures").rglob("*")
        )
    assert fixtures["kvorum"] == fixtures["etcd"], fixtures
