"""Shared helpers of the member e2e tests: the kvorum binary, polling, member-list parsing."""

from __future__ import annotations

import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import pytest

from kvorum.testing import ETCDCTL, Cluster, binary_for

T = TypeVar("T")

CONVERGE_TIMEOUT_S = 15.0
POLL_S = 0.05


def kvorum_binary() -> list[str]:
    command = binary_for("kvorum")
    for tool in (command[0], ETCDCTL):
        if shutil.which(tool) is None:
            pytest.skip(f"{tool} is not installed")
    return command


def kvorum_cluster(size: int, base_dir: Path) -> Cluster:
    """A started kvorum cluster (stop it: the caller uses it as a context manager)."""
    return Cluster(kvorum_binary(), size, base_dir=base_dir)


def eventually(
    check: Callable[[], T | None], what: str, timeout_s: float = CONVERGE_TIMEOUT_S
) -> T:
    """Poll ``check`` until it returns something truthy; fail naming ``what`` otherwise."""
    deadline = time.monotonic() + timeout_s
    last: T | None = None
    while True:
        last = check()
        if last:
            return last
        assert time.monotonic() < deadline, f"timed out waiting for {what} (last: {last!r})"
        time.sleep(POLL_S)


@dataclass(frozen=True, slots=True)
class ListedMember:
    """One line of ``etcdctl member list`` (simple format)."""

    id: str
    status: str
    name: str
    peer_urls: str
    client_urls: str
    is_learner: str


def member_list(c: Cluster, endpoint: int | None = None) -> list[ListedMember]:
    rc, out, err = c.etcdctl("member", "list", endpoint=endpoint)
    assert rc == 0, err
    return [ListedMember(*line.split(", ")) for line in out.splitlines() if line]


def all_published(c: Cluster, endpoint: int | None = None) -> list[ListedMember] | None:
    """The member list once every member shows its name and client URLs, else None."""
    members = member_list(c, endpoint)
    ok = len(members) == c.size and all(m.status == "started" and m.client_urls for m in members)
    return members if ok else None
