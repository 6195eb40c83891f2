"""The checker must keep up with what a fault test records: 10,000 operations in seconds.

``KVORUM_LONG=1`` enlarges the histories tenfold.
"""

from __future__ import annotations

import os
import random
import time
from dataclasses import replace

from kvorum.check import Verdict, check_operations, format_result
from tests.unit.check.helpers import generate_history

_SCALE = 10 if os.environ.get("KVORUM_LONG") == "1" else 1
# Generous for a loaded 2-core machine; measured ~0.2 s for 10,000 operations on 10 keys.
_BUDGET_S = 10.0 * _SCALE


def test_ten_thousand_operations_over_ten_keys_with_five_clients() -> None:
    ops = generate_history(
        random.Random(2026),
        10_000 * _SCALE,
        keys=10,
        clients=5,
        unknown_share=0.01,
        fail_share=0.02,
    )
    started = time.perf_counter()
    result = check_operations(ops, timeout_s=_BUDGET_S)
    elapsed_s = time.perf_counter() - started
    assert result.verdict is Verdict.OK, format_result(result)
    assert len(result.keys) == 10
    assert elapsed_s < _BUDGET_S


def test_one_hot_key_with_five_clients_in_bounded_memory() -> None:
    # All concurrency on one key: the search cannot split the work. It keeps ~42,000 memo
    # entries (measured): ~5 MB in the compact form, ~110 MB with whole-history bitsets.
    ops = generate_history(random.Random(11), 20_000 * _SCALE, keys=1, clients=5)
    result = check_operations(ops, timeout_s=_BUDGET_S, max_memo_bytes=(32 << 20) * _SCALE)
    assert result.verdict is Verdict.OK, format_result(result)


def test_a_late_stale_read_in_a_long_history_is_found() -> None:
    ops = generate_history(random.Random(5), 10_000 * _SCALE, keys=10, clients=5)
    reads = [op for op in ops if op.kind == "read" and op.outcome == "ok"]
    victim = reads[-100]
    # Pretend it returned what an earlier, long-overwritten read returned on the same key.
    older = [op for op in reads if op.key == victim.key and op.complete_ns is not None]
    stale = next(
        op.output
        for op in older
        if op.output != victim.output
        and op.complete_ns is not None
        and op.complete_ns < victim.invoke_ns - 10_000
    )
    mutated = [replace(op, output=stale) if op is victim else op for op in ops]
    result = check_operations(mutated, timeout_s=_BUDGET_S)
    assert result.verdict is Verdict.ILLEGAL
    assert [v.key for v in result.violations] == [victim.key]
