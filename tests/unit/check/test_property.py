"""Generated histories: real executions must pass, one corrupted result must fail, and the
search must agree with exhaustive enumeration on tiny random histories."""

from __future__ import annotations

import random
from dataclasses import replace

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kvorum.check import Operation, Verdict, check_operations, format_result, make_operation
from kvorum.check.history import OpKind, Outcome
from kvorum.check.linearizability import relevant_operations
from tests.unit.check.helpers import (
    BRUTE_FORCE_MAX_OPS,
    brute_force_linearizable,
    concurrent_pairs,
    generate_history,
)

_SETTINGS = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])

executions = st.builds(
    lambda seed, n, keys, clients, unknown, fail: generate_history(
        random.Random(seed),
        n,
        keys=keys,
        clients=clients,
        unknown_share=unknown,
        fail_share=fail,
    ),
    seed=st.integers(0, 2**32),
    n=st.integers(1, 80),
    keys=st.integers(1, 3),
    clients=st.integers(1, 6),
    unknown=st.sampled_from([0.0, 0.05, 0.2]),
    fail=st.sampled_from([0.0, 0.1]),
)


def test_generator_produces_overlapping_operations() -> None:
    # The properties below mean little if the generated operations never overlap.
    ops = generate_history(random.Random(7), 200, clients=5)
    assert concurrent_pairs(ops) > 200


@_SETTINGS
@given(executions)
def test_real_executions_are_linearizable(ops: list[Operation]) -> None:
    result = check_operations(ops)
    assert result.verdict is Verdict.OK, format_result(result)


@_SETTINGS
@given(executions)
def test_requests_that_timed_out_may_never_have_happened(ops: list[Operation]) -> None:
    # Recast each failed request (no effect) as one whose client never heard back.
    recast = [
        replace(op, outcome="unknown", complete_ns=None) if op.outcome == "fail" else op
        for op in ops
    ]
    result = check_operations(recast)
    assert result.verdict is Verdict.OK, format_result(result)


@_SETTINGS
@given(executions, st.data())
def test_a_read_of_a_value_never_written_is_caught(
    ops: list[Operation], data: st.DataObject
) -> None:
    reads = [op for op in ops if op.kind == "read" and op.outcome == "ok"]
    if not reads:
        return
    victim = data.draw(st.sampled_from(reads))
    mutated = [replace(op, output="never-written") if op is victim else op for op in ops]
    result = check_operations(mutated)
    assert result.verdict is Verdict.ILLEGAL
    assert victim.key in {v.key for v in result.violations}


@_SETTINGS
@given(executions, st.data())
def test_a_write_that_was_read_cannot_be_reported_failed(
    ops: list[Operation], data: st.DataObject
) -> None:
    read_values = {op.output for op in ops if op.kind == "read" and op.outcome == "ok"}
    writes = [op for op in ops if op.kind == "write" and op.value in read_values]
    if not writes:
        return
    victim = data.draw(st.sampled_from(writes))
    # Values are unique per write: if it failed, nothing could have produced what was read.
    mutated = [replace(op, outcome="fail") if op is victim else op for op in ops]
    assert check_operations(mutated).verdict is Verdict.ILLEGAL


@st.composite
def tiny_histories(draw: st.DrawFn) -> list[Operation]:
    """Arbitrary small histories, mostly not linearizable: random intervals and outputs."""
    values = st.sampled_from(["x", "y"])
    maybe_value = st.one_of(st.none(), values)
    ops: list[Operation] = []
    for i in range(draw(st.integers(1, BRUTE_FORCE_MAX_OPS))):
        kind: OpKind = draw(st.sampled_from(["read", "write", "cas", "delete"]))
        outcome: Outcome = draw(st.sampled_from(["ok", "ok", "ok", "unknown", "fail"]))
        start = draw(st.integers(0, 12))
        end = start + draw(st.integers(0, 6))
        key = draw(st.sampled_from(["a", "b"]))
        value = draw(values) if kind in ("write", "cas") else None
        expected = draw(maybe_value) if kind == "cas" else None
        if kind == "read":
            output: str | bool | None = draw(maybe_value)
        elif kind == "cas":
            output = draw(st.booleans())
        elif kind == "delete":
            output = draw(st.one_of(st.none(), st.booleans()))
        else:
            output = None
        ops.append(
            make_operation(
                i,
                i % 3,
                kind,
                key,
                start,
                end if outcome == "ok" else None,
                outcome,
                value=value,
                expected=expected,
                output=output,
            )
        )
    return ops


@settings(max_examples=250, deadline=None)
@given(tiny_histories())
def test_search_agrees_with_brute_force(ops: list[Operation]) -> None:
    assert len(relevant_operations(ops)) <= BRUTE_FORCE_MAX_OPS
    result = check_operations(ops)
    assert result.verdict is not Verdict.UNKNOWN
    assert (result.verdict is Verdict.OK) == brute_force_linearizable(ops), format_result(result)


@settings(max_examples=60, deadline=None)
@given(st.integers(0, 2**32), st.integers(1, BRUTE_FORCE_MAX_OPS))
def test_brute_force_accepts_real_executions(seed: int, n: int) -> None:
    # The reference itself must not be vacuous: it passes what really happened...
    ops = generate_history(random.Random(seed), n, keys=2, clients=3, unknown_share=0.2)
    assert brute_force_linearizable(ops)
    # ...and rejects an impossible read.
    reads = [op for op in ops if op.kind == "read" and op.outcome == "ok"]
    if reads:
        bad = [replace(op, output="nope") if op is reads[0] else op for op in ops]
        assert not brute_force_linearizable(bad)
