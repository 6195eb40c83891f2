"""Run the real etcdctl and kvorumctl on the same etcd and compare what they print.

A read-only case runs etcdctl (A) then kvorumctl (B): B must equal A byte for byte.

A case that writes runs etcdctl twice around kvorumctl (A, then kvorumctl as B, then C), after
a warm-up run, each preceded by the same setup; so every run starts from the same state up to
the revisions the previous runs added. What differs between A and C is what differs between two
runs of etcdctl itself: a number there must be, in B, exactly the midpoint of A's and C's
(each run adds the same revisions); every other byte of B must equal A's.

Timestamps and client ids of log lines, and (on request) durations, are masked first.
"""

from __future__ import annotations

import io
import os
import re
import subprocess
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from kvorum.ctl import _conn
from kvorum.ctl.main import run
from kvorum.testing import ETCDCTL

__all__ = ["CtlRun", "assert_same_behaviour", "etcdctl", "kvorumctl", "mask"]

TIMEOUT_S = 30.0


@dataclass(frozen=True, slots=True)
class CtlRun:
    rc: int
    out: bytes
    err: bytes


def _base_env(env: Mapping[str, str] | None) -> dict[str, str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith("ETCDCTL_")}
    base.update(env or {})
    return base


def etcdctl(
    args: Sequence[str | bytes], stdin: bytes = b"", env: Mapping[str, str] | None = None
) -> CtlRun:
    run_env = _base_env(env)
    run_env["ETCDCTL_API"] = "3"
    done = subprocess.run(
        [ETCDCTL, *args], input=stdin, capture_output=True, env=run_env, timeout=TIMEOUT_S
    )
    return CtlRun(done.returncode, done.stdout, done.stderr)


def kvorumctl(
    args: Sequence[str | bytes], stdin: bytes = b"", env: Mapping[str, str] | None = None
) -> CtlRun:
    out, err = io.BytesIO(), io.BytesIO()
    argv = [os.fsdecode(a) for a in args]
    rc = run(
        argv,
        stdin=io.BytesIO(stdin),
        stdout=out,
        stderr=err,
        environ=dict(env or {}),
        connector=_conn.connect,
    )
    return CtlRun(rc, out.getvalue(), err.getvalue())


_MASKS = [
    (re.compile(rb'"ts":"[^"]*"'), b'"ts":"<ts>"'),
    (re.compile(rb"client-[0-9a-f-]{36}"), b"client-<id>"),
    (re.compile(rb"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{6} ", re.M), b"<time> "),
    (re.compile(rb"\b\d+(\.\d+)?(ns|\xc2\xb5s|ms|s)\b"), b"<duration>"),
]


_HEX_ID = re.compile(rb"\b[0-9a-f]{16}\b")


def _decimal_ids(data: bytes) -> bytes:
    # Lease ids are printed in hex; in decimal the midpoint rule applies to them too.
    return _HEX_ID.sub(lambda m: str(int(m.group(0), 16)).encode(), data)


def mask(data: bytes, *, durations: bool = False) -> bytes:
    for i, (pattern, repl) in enumerate(_MASKS):
        if i == len(_MASKS) - 1 and not durations:
            break
        data = pattern.sub(repl, data)
    if durations:
        # A table's column widths follow the duration's length.
        data = re.sub(rb"-+", b"-", data)
        data = re.sub(rb" +", b" ", data)
    return data


_NUMBER = re.compile(rb"(\d+)")


def _compare(a: bytes, b: bytes, c: bytes, what: str) -> None:
    if a == c:
        assert b == a, f"{what} differs:\netcdctl:\n{a!r}\nkvorumctl:\n{b!r}"
        return
    pa, pb, pc = _NUMBER.split(a), _NUMBER.split(b), _NUMBER.split(c)
    assert len(pa) == len(pc), f"{what}: two etcdctl runs differ beyond numbers:\n{a!r}\n{c!r}"
    assert len(pb) == len(pa), f"{what} differs:\netcdctl:\n{a!r}\nkvorumctl:\n{b!r}"
    for i, (x, y, z) in enumerate(zip(pa, pb, pc, strict=True)):
        if i % 2 == 0:
            assert x == z, f"{what}: two etcdctl runs differ beyond numbers:\n{a!r}\n{c!r}"
            assert y == x, f"{what} differs:\netcdctl:\n{a!r}\nkvorumctl:\n{b!r}"
        elif x != z:
            assert 2 * int(y) == int(x) + int(z), (
                f"{what}: number {y!r} is not between etcdctl's {x!r} and {z!r}:\n"
                f"etcdctl:\n{a!r}\nkvorumctl:\n{b!r}"
            )
        else:
            assert y == x, f"{what} differs:\netcdctl:\n{a!r}\nkvorumctl:\n{b!r}"


def assert_same_behaviour(
    args: Sequence[str | bytes],
    *,
    stdin: bytes = b"",
    env: Mapping[str, str] | None = None,
    setup: Sequence[Sequence[str | bytes]] = (),
    durations: bool = False,
    writes: bool = False,
    hex_ids: bool = False,
) -> CtlRun:
    """Run the case as described in the module docstring; returns kvorumctl's run.

    ``writes`` marks a case whose setup or command changes the store; ``hex_ids`` compares
    16-digit hex ids (leases) as numbers.
    """

    def norm(data: bytes) -> bytes:
        data = mask(data, durations=durations)
        return _decimal_ids(data) if hex_ids else data

    if not writes and not setup:
        a = etcdctl(args, stdin, env)
        b = kvorumctl(args, stdin, env)
        assert b.rc == a.rc, f"exit code {b.rc} != etcdctl's {a.rc}\netcdctl: {a}\nkvorumctl: {b}"
        for name, x, y in (("stdout", a.out, b.out), ("stderr", a.err, b.err)):
            mx, my = norm(x), norm(y)
            _compare(mx, my, mx, name)
        return b

    def prepare() -> None:
        for step in setup:
            done = etcdctl(step)
            assert done.rc == 0, (step, done)

    prepare()
    etcdctl(args, stdin, env)  # warm-up: the state A starts from is the state B and C do
    prepare()
    a = etcdctl(args, stdin, env)
    prepare()
    b = kvorumctl(args, stdin, env)
    prepare()
    c = etcdctl(args, stdin, env)
    assert b.rc == a.rc, f"exit code {b.rc} != etcdctl's {a.rc}\netcdctl: {a}\nkvorumctl: {b}"
    assert a.rc == c.rc
    for name, x, y, z in (("stdout", a.out, b.out, c.out), ("stderr", a.err, b.err, c.err)):
        _compare(norm(x), norm(y), norm(z), name)
    return b
