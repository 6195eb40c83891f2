"""The differential comparison catches real differences: the normaliser must not hide them.

Two real etcd clusters run deliberately different steps; every semantic difference -- a value,
a mod revision and version, a delete count, an exit code and error text -- must come out as a
reported step with a unified diff, while identical steps must still compare equal.
"""

from __future__ import annotations

import shlex
from pathlib import Path

from kvorum.testing import Cluster
from kvorum.testing.differential import compare, run_pair
from kvorum.testing.scenario import Scenario, Step


def _scenario(*commands: str) -> Scenario:
    steps = tuple(
        Step(number=n, args=tuple(shlex.split(c))) for n, c in enumerate(commands, start=1)
    )
    return Scenario(name="probe", path=Path("probe"), description="", steps=steps)


def _steps_reported(reports: list[str]) -> list[int]:
    return [int(r.split(":", 1)[0].removeprefix("step ")) for r in reports]


def test_real_differences_are_detected(clusters: tuple[Cluster, Cluster]) -> None:
    # Baseline: the same steps, including the most normalised outputs, compare equal.
    same = _scenario(
        "put det/k bar",
        "get det/k -w json",
        "endpoint status -w table",
        "endpoint status -w json",
        "member list -w fields",
    )
    assert compare(*run_pair(*clusters, same)) == []

    # A different value: the put prints OK on both sides, the reads differ.
    left, right = run_pair(
        *clusters,
        _scenario("put det/v bar", "get det/v", "get det/v -w json"),
        _scenario("put det/v baz", "get det/v", "get det/v -w json"),
    )
    reports = compare(left, right)
    assert _steps_reported(reports) == [2, 3], reports
    assert "\n-bar\n" in reports[0] and "\n+baz\n" in reports[0], reports[0]
    assert '"value":"YmFy"' in reports[1] and '"value":"YmF6"' in reports[1], reports[1]

    # One extra write on one side: mod_revision, version and the header revision differ.
    left, right = run_pair(
        *clusters,
        _scenario("put det/other x", "get det/v -w json"),
        _scenario("put det/v baz", "get det/v -w json"),
    )
    reports = compare(left, right)
    assert _steps_reported(reports) == [2], reports
    assert '"mod_revision":' in reports[0] and '"version":2' in reports[0], reports[0]

    # Different delete counts, and an error on one side only (exit code and stderr).
    left, right = run_pair(
        *clusters,
        _scenario("del det/none", "get det/v --rev=1"),
        _scenario("del det/k", "get det/v --rev=999999"),
    )
    reports = compare(left, right)
    assert _steps_reported(reports) == [1, 2], reports
    assert "\n-0\n" in reports[0] and "\n+1\n" in reports[0], reports[0]
    assert "-exit code: 0" in reports[1] and "+exit code: 1" in reports[1], reports[1]
    assert "required revision is a future revision" in reports[1], reports[1]
