"""A search that runs out of time or steps answers unknown — never ok."""

from __future__ import annotations

import random
from collections.abc import Callable

from kvorum.check import Verdict, check_operations
from tests.unit.check.helpers import H, generate_history


def _stepping_clock(step_s: float) -> Callable[[], float]:
    now = [0.0]

    def clock() -> float:
        now[0] += step_s
        return now[0]

    return clock


def test_step_limit_gives_unknown() -> None:
    ops = generate_history(random.Random(1), 3_000, keys=1, clients=5)
    result = check_operations(ops, max_steps=100)
    assert result.verdict is Verdict.UNKNOWN
    assert result.reason == "step limit"
    # The same history is fine with a real budget: the limit, not the history, decided.
    assert check_operations(ops).verdict is Verdict.OK


def test_deadline_gives_unknown_and_skips_the_remaining_keys() -> None:
    ops = generate_history(random.Random(1), 6_000, keys=3, clients=5)
    # Every clock reading advances 1 s: the first check after the start is past a 1.5 s deadline.
    result = check_operations(ops, timeout_s=1.5, clock=_stepping_clock(1.0))
    assert result.verdict is Verdict.UNKNOWN
    assert result.reason == "timeout"
    assert [k.verdict for k in result.keys] == [Verdict.UNKNOWN] * 3
    assert result.keys[-1].steps == 0


def test_illegal_is_reported_even_when_another_key_is_undecided() -> None:
    ops = generate_history(random.Random(4), 3_000, keys=1, clients=5)
    # Key "a-bad" sorts first and is cheap; the big key then runs out of steps.
    bad = H().read(1, 0, 10, "ghost", key="a-bad").ops
    result = check_operations([*bad, *ops], max_steps=100)
    assert result.verdict is Verdict.ILLEGAL
    assert {k.key: k.verdict for k in result.keys} == {
        "a-bad": Verdict.ILLEGAL,
        "key0": Verdict.UNKNOWN,
    }


def test_memo_limit_gives_unknown_for_that_key_only() -> None:
    big = generate_history(random.Random(1), 2_000, keys=1, clients=5)
    small = H().write(1, 0, 10, "a", key="b-small").read(2, 20, 30, "a", key="b-small").ops
    # Room for about a hundred memo entries: enough for the small key, not the big one.
    result = check_operations([*big, *small], max_memo_bytes=100 * 400)
    assert result.verdict is Verdict.UNKNOWN
    assert result.reason == "memo limit"
    assert {k.key: k.verdict for k in result.keys} == {
        "b-small": Verdict.OK,
        "key0": Verdict.UNKNOWN,
    }
