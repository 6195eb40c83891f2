"""Fixtures of the lock and election tests: etcd and kvorum side by side, background etcdctls.

``pair`` is a fresh 1-member real etcd (the reference) and a fresh 1-member kvorum
(``.venv/bin/kvorum``), started concurrently and stopped by pid at teardown. ``background``
starts etcdctl processes that keep running (a lock holder, a campaign, a listener); every one
is stopped by pid at teardown, pass or fail.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from kvorum.testing import ETCD, Cluster, binary_for
from tests.e2e.lockelect.helpers import BackgroundCtl

Background = Callable[..., BackgroundCtl]
BACKGROUND_MAX = 16


@pytest.fixture
def pair(tmp_path: Path, etcd_installed: None) -> Iterator[tuple[Cluster, Cluster]]:
    reference = Cluster(ETCD, 1, base_dir=tmp_path / "etcd")
    target = Cluster(binary_for("kvorum"), 1, base_dir=tmp_path / "kvorum")
    try:
        with ThreadPoolExecutor(max_workers=2) as pool:
            for started in [pool.submit(reference.start), pool.submit(target.start)]:
                started.result()
        yield reference, target
    finally:
        reference.stop()
        target.stop()


@pytest.fixture
def background() -> Iterator[Background]:
    started: list[BackgroundCtl] = []

    def start(cluster: Cluster, args: Sequence[str], *, member: int = 0) -> BackgroundCtl:
        if len(started) >= BACKGROUND_MAX:
            raise RuntimeError(f"more than {BACKGROUND_MAX} background etcdctls in one test")
        ctl = BackgroundCtl(cluster, args, member=member)
        started.append(ctl)
        return ctl

    try:
        yield start
    finally:
        for ctl in started:
            ctl.stop()
