"""Linearizability checking: Wing & Gong's search with Lowe's just-in-time linearization.

The history is split by key and each key is checked on its own: a history of single-key
operations is linearizable iff every per-key subhistory is (locality, Herlihy & Wing 1990;
P-compositionality, Horn & Kroening 2015). Each subhistory becomes a list of call and return
events sorted by time; the search walks it, tentatively linearizing a pending call when the model
accepts it (removing its call and return from the list), and backtracks when it meets the return
of an operation it has not linearized — that operation would have had to take effect before it
returned. A set of (linearized operations, model state) pairs already explored prunes repeats
(Lowe, "Testing for linearizability", 2017).

Real-time order: operation A precedes B iff ``A.complete_ns < B.invoke_ns``. Equal timestamps
count as overlapping (calls sort before returns at the same instant), which can only make the
checker more permissive, never report a false violation.

Outcomes: ``fail`` operations are dropped (etcd answered with a definite error: no effect);
``unknown`` operations never return (their return sorts after every real event), so they may take
effect at any point after their invoke — or, being placeable last where nothing observes them,
never. A read with an unknown outcome observed nothing and is dropped.

A step budget and a deadline bound the search; when either runs out the verdict is ``unknown``,
never ``ok``.
"""

from __future__ import annotations

import enum
import time
from collections.abc import Callable, Hashable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from kvorum.check.history import Operation
from kvorum.check.model import Model, RegisterModel

DEFAULT_TIMEOUT_S = 60.0
# Search steps (one model step attempt or one backtrack each) across the whole history.
DEFAULT_MAX_STEPS = 200_000_000
# The memo's size is estimated as its bitsets' bytes plus _MEMO_ENTRY_OVERHEAD_BYTES per entry
# and capped per key.
DEFAULT_MAX_MEMO_BYTES = 1 << 30
_MEMO_ENTRY_OVERHEAD_BYTES = 120
# How many steps pass between two clock readings; reading the clock each step costs ~10%.
_CLOCK_EVERY_STEPS = 1024


# One tentative linearization step: (call entry, model state before it, the frame below).
_Frame = tuple[int, Hashable, "_Frame | None"]


class Verdict(enum.Enum):
    OK = "ok"
    ILLEGAL = "illegal"
    UNKNOWN = "unknown"


@dataclass(frozen=True, slots=True)
class Violation:
    """Why a key's subhistory is not linearizable, at the deepest point the search reached.

    ``prefix`` is the longest sequence of operations the search managed to linearize (in
    linearization order); after it the model is in ``state``. ``stuck`` is the operation whose
    return came next and that could not be placed: no order of the pending operations lets it
    take effect before it returned. ``concurrent`` are the operations whose intervals overlap
    ``stuck``'s — the candidates for "what should have happened instead".
    """

    key: str
    prefix: tuple[Operation, ...]
    state: str
    stuck: Operation
    concurrent: tuple[Operation, ...]


@dataclass(frozen=True, slots=True)
class KeyResult:
    key: str
    verdict: Verdict
    op_count: int
    steps: int
    violation: Violation | None = None
    reason: str = ""  # why the verdict is unknown: "timeout", "step limit" or "memo limit"


@dataclass(frozen=True, slots=True)
class CheckResult:
    """The verdict over a whole history: illegal if any key is, else unknown if any key is."""

    verdict: Verdict
    keys: tuple[KeyResult, ...]
    elapsed_s: float
    reason: str = ""

    @property
    def violations(self) -> tuple[Violation, ...]:
        return tuple(k.violation for k in self.keys if k.violation is not None)


class _Budget:
    """Shared step budget and deadline for one check; `reason` latches what ran out."""

    __slots__ = ("clock", "deadline", "reason", "steps_left")

    def __init__(self, max_steps: int, deadline: float, clock: Callable[[], float]) -> None:
        self.steps_left = max_steps
        self.deadline = deadline
        self.clock = clock
        self.reason = ""

    def spend(self, steps: int) -> bool:
        """Take `steps` from the budget; False (and `reason` set) once anything runs out."""
        self.steps_left -= steps
        if self.steps_left < 0:
            self.reason = "step limit"
            return False
        if self.clock() > self.deadline:
            self.reason = "timeout"
            return False
        return True


def relevant_operations(ops: Iterable[Operation]) -> list[Operation]:
    """The operations the search must place: drop definite failures and unknown reads."""
    return [
        op
        for op in ops
        if op.outcome != "fail" and not (op.outcome == "unknown" and op.kind == "read")
    ]


def partition_by_key(ops: Iterable[Operation]) -> dict[str, list[Operation]]:
    """Split a history into per-key subhistories, each in history order."""
    parts: dict[str, list[Operation]] = {}
    for op in ops:
        parts.setdefault(op.key, []).append(op)
    return parts


def overlaps(a: Operation, b: Operation) -> bool:
    """True when neither operation finished strictly before the other began."""
    a_end = a.complete_ns if a.outcome == "ok" else None
    b_end = b.complete_ns if b.outcome == "ok" else None
    a_before_b = a_end is not None and a_end < b.invoke_ns
    b_before_a = b_end is not None and b_end < a.invoke_ns
    return not (a_before_b or b_before_a)


def check_partition(
    model: Model[Any],
    ops: Sequence[Operation],
    budget: _Budget,
    key: str = "",
    max_memo_bytes: int = DEFAULT_MAX_MEMO_BYTES,
) -> KeyResult:
    """Run the search over one subhistory (already filtered by `relevant_operations`)."""
    # Bit i of the linearized set stands for ops[i]; numbering by invoke time keeps the set's
    # compact form (below) small.
    ops = sorted(ops, key=lambda op: op.invoke_ns)
    n = len(ops)
    memo_bytes = 0
    if n == 0:
        return KeyResult(key, Verdict.OK, 0, 0)

    # Events: entry 2*i is the call of ops[i], 2*i+1 its return. Unknown operations return
    # after every real event, so they stay pending to the end of the history.
    last_ns = max(max(op.invoke_ns, op.complete_ns or 0) for op in ops) + 1
    order: list[tuple[int, int, int]] = []
    for i, op in enumerate(ops):
        order.append((op.invoke_ns, 0, 2 * i))
        end_ns = op.complete_ns if op.outcome == "ok" and op.complete_ns is not None else last_ns
        order.append((end_ns, 1, 2 * i + 1))
    # Calls (0) sort before returns (1) at the same instant: touching intervals overlap.
    order.sort()

    # A doubly-linked list over the event ids, with head and tail sentinels, so that lifting a
    # linearized operation out and putting it back on backtrack are O(1) (dancing links).
    head, tail = 2 * n, 2 * n + 1
    nxt = [0] * (2 * n + 2)
    prv = [0] * (2 * n + 2)
    prev_entry = head
    for _, _, entry in order:
        nxt[prev_entry] = entry
        prv[entry] = prev_entry
        prev_entry = entry
    nxt[prev_entry] = tail
    prv[tail] = prev_entry

    step = model.step
    state: Hashable = model.init()
    linearized = 0  # bit i set: ops[i] is in the current tentative linearization
    # The stack of tentative steps is a linked list of immutable frames
    # (call entry, state before it, next frame down), so remembering the deepest point reached
    # costs one reference, not a copy. Invariant: the frames are exactly the operations in
    # `linearized`, in linearization order (top first), and their entries are lifted.
    stack: _Frame | None = None
    depth = 0
    # Memo of (linearized set, state) pairs already explored. The set is stored as
    # (lowest operation not in it, the rest shifted down): every operation below the lowest
    # missing one is in the set, so this is the same set, in bytes proportional to the span of
    # operations in flight rather than to the whole history.
    seen: set[tuple[int, int, Hashable]] = set()
    best_depth = -1
    best_stack: _Frame | None = None
    best_state: Hashable = state
    best_stuck = -1

    steps = 0
    since_clock = 0
    entry = nxt[head]
    while nxt[head] != tail:
        steps += 1
        since_clock += 1
        if since_clock >= _CLOCK_EVERY_STEPS:
            if not budget.spend(since_clock):
                return KeyResult(key, Verdict.UNKNOWN, n, steps, reason=budget.reason)
            since_clock = 0
        if entry & 1 == 0:
            # A call: try to linearize its operation now.
            i = entry >> 1
            legal, new_state = step(state, ops[i])
            if legal:
                new_linearized = linearized | (1 << i)
                low = ((new_linearized + 1) & ~new_linearized).bit_length() - 1
                rest = new_linearized >> low
                memo = (low, rest, new_state)
                if memo not in seen:
                    memo_bytes += (rest.bit_length() >> 3) + _MEMO_ENTRY_OVERHEAD_BYTES
                    if memo_bytes > max_memo_bytes:
                        budget.spend(since_clock)
                        return KeyResult(key, Verdict.UNKNOWN, n, steps, reason="memo limit")
                    seen.add(memo)
                    stack = (entry, state, stack)
                    depth += 1
                    state = new_state
                    linearized = new_linearized
                    ret = entry + 1
                    nxt[prv[entry]] = nxt[entry]
                    prv[nxt[entry]] = prv[entry]
                    nxt[prv[ret]] = nxt[ret]
                    prv[nxt[ret]] = prv[ret]
                    entry = nxt[head]
                    continue
            entry = nxt[entry]
        else:
            # The return of an operation not yet linearized (never the tail sentinel: every call
            # still listed has its return after it): it must have taken effect before now, and
            # no remaining choice does that — undo the latest tentative step.
            if depth > best_depth:
                best_depth = depth
                best_stack = stack
                best_state = state
                best_stuck = entry >> 1
            if stack is None:
                budget.spend(since_clock)
                stuck = ops[best_stuck]
                violation = Violation(
                    key=key,
                    prefix=tuple(ops[call >> 1] for call in _unwind(best_stack)),
                    state=model.describe(best_state),
                    stuck=stuck,
                    concurrent=tuple(op for op in ops if op is not stuck and overlaps(op, stuck)),
                )
                return KeyResult(key, Verdict.ILLEGAL, n, steps, violation)
            call, state, stack = stack
            depth -= 1
            linearized &= ~(1 << (call >> 1))
            ret = call + 1
            # Re-insert in the reverse order of removal; their own links were kept.
            nxt[prv[ret]] = ret
            prv[nxt[ret]] = ret
            nxt[prv[call]] = call
            prv[nxt[call]] = call
            entry = nxt[call]
    budget.spend(since_clock)
    return KeyResult(key, Verdict.OK, n, steps)


def _unwind(top: _Frame | None) -> list[int]:
    """The call entries of a frame chain, bottom (first linearized) first."""
    calls: list[int] = []
    while top is not None:
        calls.append(top[0])
        top = top[2]
    calls.reverse()
    return calls


def check_operations(
    ops: Iterable[Operation],
    model: Model[Any] | None = None,
    *,
    timeout_s: float = DEFAULT_TIMEOUT_S,
    max_steps: int = DEFAULT_MAX_STEPS,
    max_memo_bytes: int = DEFAULT_MAX_MEMO_BYTES,
    clock: Callable[[], float] = time.monotonic,
) -> CheckResult:
    """Check a whole history, one key at a time, against `model` (a register per key).

    Every key is checked (so a report lists every illegal key) until the time or step budget runs
    out; keys left unchecked then count as unknown. A key whose memo outgrows `max_memo_bytes`
    (an estimate) is unknown, and the other keys are still checked.
    """
    register = model if model is not None else RegisterModel()
    started = clock()
    budget = _Budget(max_steps, started + timeout_s, clock)
    parts = partition_by_key(relevant_operations(ops))
    results: list[KeyResult] = []
    for key in sorted(parts):
        if budget.reason:
            results.append(
                KeyResult(key, Verdict.UNKNOWN, len(parts[key]), 0, reason=budget.reason)
            )
            continue
        results.append(check_partition(register, parts[key], budget, key, max_memo_bytes))
    verdicts = {r.verdict for r in results}
    if Verdict.ILLEGAL in verdicts:
        verdict = Verdict.ILLEGAL
    elif Verdict.UNKNOWN in verdicts:
        verdict = Verdict.UNKNOWN
    else:
        verdict = Verdict.OK
    return CheckResult(
        verdict=verdict,
        keys=tuple(results),
        elapsed_s=clock() - started,
        reason=next((r.reason for r in results if r.reason), "")
        if verdict is Verdict.UNKNOWN
        else "",
    )
