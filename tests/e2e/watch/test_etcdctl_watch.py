"""`etcdctl watch` against kvorum prints what it prints against etcd 3.4, for the same history.

A fresh single-member etcd and kvorum get the same writes (from another etcdctl) while
background `etcdctl watch` processes follow a key, a prefix with --prev-kv, and then replay
the history with --rev. Every watch starts at an explicit revision, so its output does not
depend on when the watcher got connected; the last write (`foo/a` = `end`) ends each read.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from kvorum.testing import ETCD, Cluster, binary_for
from tests.e2e.watch.helpers import CtlWatch

WRITES: tuple[tuple[str, ...], ...] = (
    ("put", "foo/a", "1"),
    ("put", "foo/b", "2"),
    ("put", "bar", "x"),
    ("del", "foo/a"),
    ("put", "foo/a", "3"),
    ("put", "foo/c", "4"),
    ("del", "--prefix", "foo/"),  # three deletes at one revision
    ("put", "foo/b", "5"),
    ("put", "foo/a", "end"),
)


@pytest.fixture
def pair(tmp_path: Path, etcd_installed: None) -> Iterator[tuple[Cluster, Cluster]]:
    etcd = Cluster(ETCD, 1, base_dir=tmp_path / "etcd")
    kvorum = Cluster(binary_for("kvorum"), 1, base_dir=tmp_path / "kvorum")
    try:
        with ThreadPoolExecutor(max_workers=2) as pool:
            for started in [pool.submit(etcd.start), pool.submit(kvorum.start)]:
                started.result()
        yield etcd, kvorum
    finally:
        etcd.stop()
        kvorum.stop()


def _history_and_watches(cluster: Cluster) -> dict[str, list[str]]:
    """Run the writes under live watches, then replay; every watch's output by name."""
    assert cluster.etcdctl("put", "foo/a", "0").returncode == 0  # revision 2
    live = {
        "key": CtlWatch(cluster, "foo/a", "--rev=3"),
        "prefix-prev-kv": CtlWatch(cluster, "--prefix", "foo/", "--rev=3", "--prev-kv"),
    }
    try:
        time.sleep(0.5)  # let the watches connect, so most events reach them live
        for write in WRITES:
            done = cluster.etcdctl(*write)
            assert done.returncode == 0, done
        out = {name: w.until("end") for name, w in live.items()}
    finally:
        for w in live.values():
            w.stop()
    replays = {
        "replay-prefix": ("--prefix", "foo/", "--rev=2"),
        "replay-key-prev-kv": ("foo/a", "--rev=4", "--prev-kv"),
        "replay-from-1": ("", "--prefix", "--rev=1"),
    }
    for name, args in replays.items():
        w = CtlWatch(cluster, *args)
        try:
            out[name] = w.until("end")
        finally:
            w.stop()
    return out


def test_watch_output_equals_etcds(pair: tuple[Cluster, Cluster]) -> None:
    etcd, kvorum = pair
    with ThreadPoolExecutor(max_workers=2) as pool:
        want_f = pool.submit(_history_and_watches, etcd)
        got_f = pool.submit(_history_and_watches, kvorum)
        want, got = want_f.result(), got_f.result()
    # The single-key watch saw the puts and deletes of another etcdctl, in order.
    assert want["key"] == [
        *("PUT", "foo/a", "1"),
        *("DELETE", "foo/a", ""),
        *("PUT", "foo/a", "3"),
        *("DELETE", "foo/a", ""),
        *("PUT", "foo/a", "end"),
    ]
    for name in want:
        assert got[name] == want[name], name
