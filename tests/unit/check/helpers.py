"""Builders for check tests: terse histories, a sequential-execution generator, brute force."""

from __future__ import annotations

import itertools
import random
from collections.abc import Sequence
from dataclasses import replace

from kvorum.check.history import Operation, OpKind, Outcome, make_operation
from kvorum.check.linearizability import overlaps, relevant_operations
from kvorum.check.model import RegisterModel


class H:
    """Append operations with short calls; times are plain integers (ns)."""

    def __init__(self) -> None:
        self.ops: list[Operation] = []

    def _add(
        self,
        kind: OpKind,
        p: int,
        start: int,
        end: int | None,
        outcome: Outcome,
        key: str,
        **fields: object,
    ) -> H:
        self.ops.append(
            make_operation(len(self.ops), p, kind, key, start, end, outcome, **fields)  # type: ignore[arg-type]
        )
        return self

    def read(
        self,
        p: int,
        start: int,
        end: int | None,
        value: str | None,
        key: str = "k",
        *,
        outcome: Outcome = "ok",
    ) -> H:
        return self._add("read", p, start, end, outcome, key, output=value)

    def write(
        self,
        p: int,
        start: int,
        end: int | None,
        value: str,
        key: str = "k",
        *,
        outcome: Outcome = "ok",
    ) -> H:
        return self._add("write", p, start, end, outcome, key, value=value)

    def cas(
        self,
        p: int,
        start: int,
        end: int | None,
        expected: str | None,
        new: str,
        swapped: bool | None,
        key: str = "k",
        *,
        outcome: Outcome = "ok",
    ) -> H:
        return self._add(
            "cas", p, start, end, outcome, key, expected=expected, value=new, output=swapped
        )

    def delete(
        self,
        p: int,
        start: int,
        end: int | None,
        deleted: bool | None = None,
        key: str = "k",
        *,
        outcome: Outcome = "ok",
    ) -> H:
        return self._add("delete", p, start, end, outcome, key, output=deleted)


BRUTE_FORCE_MAX_OPS = 8


def brute_force_linearizable(ops: Sequence[Operation]) -> bool:
    """Exhaustive reference the search must agree with: every order of the operations.

    Depth-first over all orders (pruned only where an order is already wrong: a real-time
    violation or an illegal model step), where an unknown operation may also be left out. No
    memoization and no event list, so it shares nothing with the search but the model. At most
    `BRUTE_FORCE_MAX_OPS` relevant operations.
    """
    relevant = relevant_operations(ops)
    assert len(relevant) <= BRUTE_FORCE_MAX_OPS, "brute force is for tiny histories"
    model = RegisterModel()

    def extend(remaining: tuple[Operation, ...], state: dict[str, str | None]) -> bool:
        if all(op.outcome == "unknown" for op in remaining):
            return True  # leave the unknown ones out: they never happened
        for op in remaining:
            others = tuple(o for o in remaining if o is not op)
            # `op` goes next: wrong if some operation still to come finished before it began.
            if any(
                o.outcome == "ok" and o.complete_ns is not None and o.complete_ns < op.invoke_ns
                for o in others
            ):
                continue
            legal, new = model.step(state.get(op.key), op)
            if legal and extend(others, {**state, op.key: new}):
                return True
        return False

    return extend(tuple(relevant), {})


def generate_history(
    rng: random.Random,
    op_count: int,
    *,
    keys: int = 1,
    clients: int = 5,
    max_latency_ns: int = 300,
    unknown_share: float = 0.0,
    fail_share: float = 0.0,
) -> list[Operation]:
    """A linearizable history from a real sequential execution with overlapping timing.

    Each client issues one request at a time; each request takes effect at a random instant
    inside its interval, and outputs come from executing the requests in the order of those
    instants. Written values are unique, so a value read names the write that produced it.
    ``unknown`` requests took effect but their client never learnt it; ``fail`` requests did
    not take effect at all.
    """
    cursor_ns = [0] * clients
    drafts: list[tuple[int, int, int, int, str, str, Outcome, str | None]] = []
    for n in range(op_count):
        c = min(range(clients), key=lambda i: cursor_ns[i])
        invoke = cursor_ns[c] + rng.randint(1, max_latency_ns // 3 + 1)
        complete = invoke + rng.randint(0, max_latency_ns)
        point = rng.randint(invoke, complete)
        cursor_ns[c] = complete
        r = rng.random()
        kind = "read" if r < 0.45 else "write" if r < 0.75 else "cas" if r < 0.93 else "delete"
        roll = rng.random()
        outcome: Outcome = (
            "unknown"
            if roll < unknown_share
            else "fail"
            if roll < unknown_share + fail_share
            else "ok"
        )
        if outcome == "unknown":
            cursor_ns[c] = complete + max_latency_ns * 4  # a timed-out client waits, then moves on
        draft = (point, invoke, complete, c, kind, f"key{rng.randrange(keys)}", outcome, f"v{n}")
        drafts.append(draft)
    drafts.sort()
    state: dict[str, str | None] = {}
    written: list[str] = []
    ops: list[Operation] = []
    for _point, invoke, complete, c, kind, key, outcome, fresh in drafts:
        current = state.get(key)
        applies = outcome != "fail"
        end = complete if outcome == "ok" else None
        fields: dict[str, object] = {}
        if kind == "read":
            fields["output"] = current
        elif kind == "write":
            fields["value"] = fresh
            if applies:
                state[key] = fresh
                written.append(fresh)
        elif kind == "cas":
            expected = current if rng.random() < 0.5 or not written else rng.choice(written)
            if rng.random() < 0.1:
                expected = None
            swapped = current == expected
            fields.update(expected=expected, value=fresh, output=swapped)
            if applies and swapped:
                state[key] = fresh
                written.append(fresh)
        else:
            fields["output"] = current is not None
            if applies:
                state[key] = None
        ops.append(
            make_operation(len(ops), c, kind, key, invoke, end, outcome, **fields)  # type: ignore[arg-type]
        )
    # Present them in invoke order, as a recorder would write them.
    ops.sort(key=lambda op: op.invoke_ns)
    return [replace(op, index=i) for i, op in enumerate(ops)]


def concurrent_pairs(ops: Sequence[Operation]) -> int:
    """How many pairs of operations overlap in time (to assert a generator makes concurrency)."""
    return sum(1 for a, b in itertools.combinations(ops, 2) if overlaps(a, b))
