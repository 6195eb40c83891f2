"""Fixtures of the differential suite: a fresh reference etcd and a fresh target, side by side.

``KVORUM_DIFF_TARGET`` picks the target: ``kvorum`` (the default, ``.venv/bin/kvorum``),
``etcd``, or a member command line; see ``test_differential.py``.
"""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from kvorum.testing import ETCD, Cluster, binary_for
from kvorum.testing.differential import diff_target


@pytest.fixture
def clusters(tmp_path: Path, etcd_installed: None) -> Iterator[tuple[Cluster, Cluster]]:
    """A fresh 1-member reference etcd and a fresh 1-member target, started concurrently."""
    reference = Cluster(ETCD, 1, base_dir=tmp_path / "reference")
    target = Cluster(binary_for(diff_target()), 1, base_dir=tmp_path / "target")
    try:
        with ThreadPoolExecutor(max_workers=2) as pool:
            for started in [pool.submit(reference.start), pool.submit(target.start)]:
                started.result()
        yield reference, target
    finally:
        # By pid, pass or fail (start() already stops a cluster that failed to come up).
        reference.stop()
        target.stop()
