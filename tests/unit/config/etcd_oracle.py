"""Running the real etcd 3.4 binary as the reference these tests compare kvorum with.

Every etcd started here listens on loopback ports picked free at start, keeps its data in a
pytest tmp dir, gets an environment without the caller's ``ETCD_*`` variables, and is killed
by pid in a ``finally``.
"""

from __future__ import annotations

import os
import socket
import subprocess
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path

import pytest

ETCD = Path("/usr/bin/etcd")
STARTED = -1000  # pseudo return code: etcd was still running at the deadline
ETCDCTL = Path("/usr/bin/etcdctl")
requires_etcd = pytest.mark.skipif(not ETCD.exists(), reason="real etcd (etcd-server) missing")
requires_etcdctl = pytest.mark.skipif(
    not (ETCD.exists() and ETCDCTL.exists()), reason="real etcd/etcdctl missing"
)


def free_port() -> int:
    """A loopback TCP port nobody listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def clean_env(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """An environment with only PATH plus ``extra``: no stray ETCD_* from the caller."""
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin")}
    env.update(extra or {})
    return env


def run_etcd(
    args: Sequence[str], env: Mapping[str, str], cwd: Path, timeout_s: float = 10.0
) -> subprocess.CompletedProcess[str]:
    """Run etcd to completion (the caller arranges for it to exit on its own).

    An etcd still running after ``timeout_s`` has started serving: it is killed and reported
    with return code ``STARTED``.
    """
    try:
        return subprocess.run(
            [str(ETCD), *args],
            env=clean_env(env),
            cwd=cwd,
            capture_output=True,
            text=True,
            timeout=timeout_s,
            check=False,
        )
    except subprocess.TimeoutExpired as expired:  # subprocess.run has killed it already
        return subprocess.CompletedProcess(
            expired.cmd, STARTED, _text(expired.stdout), _text(expired.stderr)
        )


def _text(data: bytes | str | None) -> str:
    if isinstance(data, bytes):
        return data.decode("utf-8", "replace")
    return data or ""


@contextmanager
def running_etcd(
    args: Sequence[str], cwd: Path, log_path: Path
) -> Iterator[subprocess.Popen[bytes]]:
    """Start etcd in the background with its log in ``log_path``; kill it on exit."""
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(
            [str(ETCD), *args],
            env=clean_env(),
            cwd=cwd,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    try:
        yield proc
    finally:
        proc.kill()
        proc.wait(timeout=10)
