"""Run an etcdctl scenario against a cluster and compare two runs step by step.

``run_scenario`` executes every step of a ``Scenario`` with the real etcdctl against one
``Cluster`` (1 member), records what etcdctl printed, and normalises it (``normalise.py``)
with that cluster's own facts. ``compare`` lines up two such runs -- the reference (etcd) and
the target -- and returns one report per step whose exit code, stdout or stderr differ, each
with a unified diff.
"""

from __future__ import annotations

import difflib
import os
import re
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from kvorum.testing.cluster import Cluster
from kvorum.testing.normalise import ClusterFacts, Invocation, normalise
from kvorum.testing.scenario import Scenario, Step, substitute

__all__ = [
    "TARGET_ENV",
    "StepResult",
    "cluster_facts",
    "compare",
    "diff_target",
    "render",
    "run_pair",
    "run_scenario",
]

STEP_TIMEOUT_S = 30.0
# Selects the side compared with etcd: "etcd" (default), "kvorum" or a member command line
# (see ``kvorum.testing.cluster.binary_for``).
TARGET_ENV = "KVORUM_DIFF_TARGET"


def diff_target() -> str:
    """The target named by ``KVORUM_DIFF_TARGET``; the kvorum member unless told otherwise."""
    return os.environ.get(TARGET_ENV, "kvorum")


@dataclass(frozen=True, slots=True)
class StepResult:
    """One step as run (after ``${VAR}`` substitution) and what etcdctl printed, normalised."""

    step: Step
    args: tuple[str, ...]
    returncode: int
    stdout: str
    stderr: str


def cluster_facts(cluster: Cluster, captured: dict[str, str]) -> ClusterFacts:
    """The identities the normaliser replaces: ports, member and cluster ids, captures."""
    statuses = [cluster.status(m.index) for m in cluster.members]
    return ClusterFacts(
        client_ports=tuple(m.spec.client_port for m in cluster.members),
        peer_ports=tuple(m.spec.peer_port for m in cluster.members),
        member_ids=tuple(s.header.member_id for s in statuses),
        cluster_id=statuses[0].header.cluster_id,
        captured=tuple(captured.items()),
    )


def run_scenario(cluster: Cluster, scenario: Scenario) -> list[StepResult]:
    """Run every step in order on ``cluster``; return the normalised results."""
    captured: dict[str, str] = {}
    raw: list[tuple[Step, tuple[str, ...], int, str, str]] = []
    for step in scenario.steps:
        args = tuple(substitute(a, captured) for a in step.args)
        stdin = None if step.stdin is None else substitute(step.stdin, captured)
        rc, out, err = cluster.etcdctl(
            *args, env=dict(step.env), stdin=stdin, timeout_s=STEP_TIMEOUT_S
        )
        for name, pattern in step.capture:
            match = re.search(pattern, out)
            if match is None:
                raise AssertionError(
                    f"{scenario.name} step {step.number} ({step.command}): capture {name} "
                    f"/{pattern}/ found nothing in stdout:\n{out}\nstderr:\n{err}"
                )
            captured[name] = match.group(1)
        raw.append((step, args, rc, out, err))
    # Normalise once every capture is known: a later listing may show an earlier capture.
    facts = cluster_facts(cluster, captured)
    results = []
    for step, args, rc, out, err in raw:
        how = Invocation.of(args, step.env)
        results.append(
            StepResult(step, args, rc, normalise(out, how, facts), normalise(err, how, facts))
        )
    return results


def run_pair(
    reference: Cluster, target: Cluster, first: Scenario, second: Scenario | None = None
) -> tuple[list[StepResult], list[StepResult]]:
    """Run ``first`` on ``reference`` and ``second`` (default: the same) on ``target``.

    The two runs go side by side, one thread each: the clusters are independent, and the
    suite's time is mostly spent waiting on etcdctl processes.
    """
    with ThreadPoolExecutor(max_workers=2) as pool:
        left = pool.submit(run_scenario, reference, first)
        right = pool.submit(run_scenario, target, first if second is None else second)
        return left.result(), right.result()


def render(result: StepResult) -> list[str]:
    """The comparable text of one step: exit code, stdout and stderr, as lines."""
    return [
        f"exit code: {result.returncode}",
        "--- stdout",
        *result.stdout.splitlines(),
        "--- stderr",
        *result.stderr.splitlines(),
    ]


def compare(
    reference: Sequence[StepResult],
    target: Sequence[StepResult],
    labels: tuple[str, str] = ("etcd", "target"),
) -> list[str]:
    """One report (with a unified diff) per step whose normalised output differs."""
    if len(reference) != len(target):
        return [f"different number of steps: {len(reference)} vs {len(target)}"]
    reports = []
    for ref, tgt in zip(reference, target, strict=True):
        left, right = render(ref), render(tgt)
        if left == right:
            continue
        diff = difflib.unified_diff(
            left, right, fromfile=labels[0], tofile=labels[1], lineterm="", n=3
        )
        reports.append(f"step {ref.step.number}: etcdctl {ref.step.command}\n" + "\n".join(diff))
    return reports
