"""``etcdctl lock`` and ``etcdctl elect`` against real etcd and against kvorum, outputs compared.

etcdctl builds both commands on KV, Lease and Watch in the client (clientv3/concurrency: a
session lease kept alive, a txn to queue, a watch for the deletion of the key ahead), so these
tests check that kvorum serves that composition as etcd does: who gets the lock or leadership,
when, with which key, and what etcdctl prints and exits with. Each scenario runs on both
servers; keys' lease suffixes are normalised (`Transcript`), everything else must be equal.
"""

from __future__ import annotations

import signal
import time

from kvorum.testing import Cluster
from tests.e2e.lockelect.conftest import Background
from tests.e2e.lockelect.helpers import WAIT_S, Transcript, stubs_for, wait_until

# etcdctl lock's session TTL for the kill tests: short, so the lease of a killed holder ends
# soon (etcd accepts TTLs down to 1.5 x the election timeout, 1.5 s by default).
TTL_S = "2"


def _queued(cluster: Cluster, prefix: bytes, count: int) -> None:
    stubs = stubs_for(cluster)
    try:
        wait_until(lambda: stubs.count(prefix) == count, f"{count} key(s) under {prefix!r}")
    finally:
        stubs.close()


def _normalised(t: Transcript, lines: list[str]) -> list[str]:
    return [t.key(line.encode()) for line in lines]


def _both(pair: tuple[Cluster, Cluster], *args: str) -> list[tuple[int, str, str]]:
    """Run one etcdctl command against each server; (rc, stdout, stderr), keys normalised."""
    out = []
    for cluster in pair:
        t = Transcript()
        rc, stdout, stderr = cluster.etcdctl(*args)
        out.append((rc, "\n".join(_normalised(t, stdout.splitlines())), stderr))
    return out


def test_lock_runs_a_command_while_held(pair: tuple[Cluster, Cluster]) -> None:
    etcd, kvorum = _both(pair, "lock", "mylock", "echo", "hi")
    assert etcd == (0, "hi", "")
    assert kvorum == etcd
    # The command sees the lock's key and revision in its environment.
    script = 'echo "$ETCD_LOCK_KEY"; echo "$ETCD_LOCK_REV"'
    etcd, kvorum = _both(pair, "lock", "other", "--", "sh", "-c", script)
    assert etcd[0] == 0 and etcd[1].startswith("other/<lease-0>\n"), etcd
    assert kvorum == etcd


# (arguments, etcd's exit code): etcdctl's own usage errors exit 128 (ExitBadArgs) before any
# request; etcdctl 3.4 exits 1 when the command it ran under the lock failed, whatever its code.
ERROR_CASES = [
    (("lock",), 128),
    (("lock", "mylock", "--", "sh", "-c", "exit 3"), 1),
    (("lock", "mylock", "/nonexistent/command"), 1),
    (("elect",), 128),
    (("elect", "myelection"), 128),  # no proposal and no -l
    (("elect", "-l", "myelection", "p1"), 128),  # a proposal with -l
    (("elect", "a", "b", "c"), 128),
]


def test_errors_and_exit_codes(pair: tuple[Cluster, Cluster]) -> None:
    for args, rc in ERROR_CASES:
        etcd, kvorum = _both(pair, *args)
        assert etcd[0] == rc, (args, etcd)
        assert etcd[2].startswith("Error: "), (args, etcd)
        assert kvorum == etcd, args


def _lock_handover(cluster: Cluster, background: Background) -> list[str]:
    """A holder, a waiter; the holder is SIGKILLed; the waiter gets the lock once the
    holder's lease expires. Returns what both printed, and checks the timing."""
    t = Transcript()
    holder = background(cluster, ["lock", "--ttl", TTL_S, "mylock"])
    held = holder.wait_lines(1)
    waiter = background(cluster, ["lock", "--ttl", TTL_S, "mylock", "echo", "acquired"])
    _queued(cluster, b"mylock/", 2)
    time.sleep(0.5)  # the waiter must not get in while the holder is alive
    assert waiter.running() and waiter.lines() == []
    holder.send_signal(signal.SIGKILL)
    killed_at = time.monotonic()
    assert waiter.wait_exit(WAIT_S) == 0, waiter.stderr()
    waited_s = time.monotonic() - killed_at
    # Released by the lease's expiry: not at once (the key stays until then), and within a
    # few TTLs on a loaded machine.
    assert 0.5 < waited_s < 15, waited_s
    return [*_normalised(t, held), "--", *waiter.lines()]


def test_waiter_gets_the_lock_when_the_killed_holders_lease_expires(
    pair: tuple[Cluster, Cluster], background: Background
) -> None:
    etcd = _lock_handover(pair[0], background)
    assert etcd == ["mylock/<lease-0>", "--", "acquired"]
    assert _lock_handover(pair[1], background) == etcd


def _election(cluster: Cluster, background: Background) -> list[str]:
    """Campaign p1; a listener; p2 and p3 queue; p1 resigns on SIGTERM, p2 leads; p2 is
    SIGKILLed and its lease revoked (as its expiry would, 60 s later), p3 leads."""
    t = Transcript()
    out: list[str] = []
    first = background(cluster, ["elect", "myelection", "p1"])
    out += _normalised(t, first.wait_lines(2))
    listener = background(cluster, ["elect", "-l", "myelection"])
    listener.wait_lines(2)
    second = background(cluster, ["elect", "myelection", "p2"])
    _queued(cluster, b"myelection/", 2)
    third = background(cluster, ["elect", "myelection", "p3"])
    _queued(cluster, b"myelection/", 3)
    assert second.lines() == [] and third.lines() == []
    first.send_signal(signal.SIGTERM)  # etcdctl resigns and exits 0
    out.append(f"p1 exit {first.wait_exit()}")
    second_lines = second.wait_lines(2)
    out += _normalised(t, second_lines)
    listener.wait_lines(4)
    second.send_signal(signal.SIGKILL)
    second.wait_exit()
    lease_hex = second_lines[0].rsplit("/", 1)[1]
    rc, _, stderr = cluster.etcdctl("lease", "revoke", lease_hex)
    assert rc == 0, stderr
    out += _normalised(t, third.wait_lines(2))
    out += ["-- listener", *_normalised(t, listener.wait_lines(6))]
    listener.send_signal(signal.SIGTERM)
    out.append(f"listener exit {listener.wait_exit()}")
    return out


def test_election_leader_changes_as_leaders_go(
    pair: tuple[Cluster, Cluster], background: Background
) -> None:
    etcd = _election(pair[0], background)
    assert etcd == [
        "myelection/<lease-0>",
        "p1",
        "p1 exit 0",
        "myelection/<lease-1>",
        "p2",
        "myelection/<lease-2>",
        "p3",
        "-- listener",
        "myelection/<lease-0>",
        "p1",
        "myelection/<lease-1>",
        "p2",
        "myelection/<lease-2>",
        "p3",
        "listener exit 0",
    ]
    assert _election(pair[1], background) == etcd
