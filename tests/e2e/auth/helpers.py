"""What two etcdctl transcripts may differ in: log timestamps, client ids, ports. Masked here."""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

from kvorum.testing import CtlResult

__all__ = ["differences", "masked"]

_MASKS = [
    (re.compile(r'"ts":"[^"]*"'), '"ts":"<ts>"'),
    (re.compile(r'"ts":\d+(\.\d+)?'), '"ts":"<ts>"'),
    (re.compile(r"client-[0-9a-f-]{36}"), "client-<id>"),
    (re.compile(r"127\.0\.0\.1:\d+"), "127.0.0.1:<port>"),
]


def masked(result: CtlResult) -> CtlResult:
    """`result` with the parts that differ between any two runs masked."""
    out, err = result.stdout, result.stderr
    for pattern, replacement in _MASKS:
        out = pattern.sub(replacement, out)
        err = pattern.sub(replacement, err)
    return CtlResult(result.returncode, out, _log_lines_sorted(err))


def _log_lines_sorted(stderr: str) -> str:
    """etcdctl's structured log lines come from concurrent goroutines (snapshot save logs
    "fetching snapshot" before or after the stream's failure, run to run): they are compared
    as a sorted block ahead of the other lines, which keep their order."""
    lines = stderr.splitlines(keepends=True)
    logs = sorted(line for line in lines if line.startswith('{"level":'))
    return "".join(logs + [line for line in lines if not line.startswith('{"level":')])


def differences(expected: Sequence[tuple[str, Any]], got: Sequence[tuple[str, Any]]) -> list[str]:
    """The labelled outcomes of the same script on etcd and kvorum that differ, one text each."""
    return [
        f"{label}:\n  etcd:   {want}\n  kvorum: {have}"
        for (label, want), (_, have) in zip(expected, got, strict=True)
        if want != have
    ]
