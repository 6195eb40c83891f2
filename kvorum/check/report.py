"""Readable explanations of a check: the verdict, and for each illegal key its failing window.

The window shown for a violation is where the search got furthest: the tail of the longest
linearizable prefix, the state it leaves the key in, the operation that cannot be placed, and the
operations concurrent with it (marked when the prefix already placed them). Times are printed
relative to the earliest operation shown, in ns, us or ms as the window's span suits; ``#N``
is the operation's position in the history (0-based, blank lines not counted).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from kvorum.check.history import Operation
from kvorum.check.linearizability import CheckResult, Verdict, Violation

# How many of the prefix's last operations a report shows; older ones are only counted.
DEFAULT_PREFIX_TAIL_OPS = 10


@dataclass(frozen=True, slots=True)
class _Clock:
    """Renders timestamps relative to ``origin_ns`` in a unit that suits the window's span."""

    origin_ns: int
    divisor: float
    unit: str

    @classmethod
    def for_ops(cls, ops: Iterable[Operation]) -> _Clock:
        times = [t for op in ops for t in (op.invoke_ns, op.complete_ns) if t is not None]
        origin_ns = min(times, default=0)
        span_ns = max(times, default=0) - origin_ns
        if span_ns < 10_000:
            return cls(origin_ns, 1.0, "ns")
        if span_ns < 10_000_000:
            return cls(origin_ns, 1e3, "us")
        return cls(origin_ns, 1e6, "ms")

    def show(self, ns: int) -> str:
        if self.unit == "ns":
            return f"{ns - self.origin_ns:+d}ns"
        digits = 1 if self.unit == "us" else 3
        return f"{(ns - self.origin_ns) / self.divisor:+.{digits}f}{self.unit}"


def _value(value: str | None) -> str:
    return "<absent>" if value is None else repr(value)


def format_operation(op: Operation, clock: _Clock | None = None) -> str:
    """One line: ``#index pPROCESS kind key args -> output [invoke .. complete] outcome``."""
    if op.kind == "read":
        body = f"read {op.key!r}"
        result = f" -> {_value(op.output if isinstance(op.output, str) else None)}"
    elif op.kind == "write":
        body = f"write {op.key!r} {_value(op.value)}"
        result = ""
    elif op.kind == "cas":
        body = f"cas {op.key!r} {_value(op.expected)} => {_value(op.value)}"
        result = f" -> {'swapped' if op.output else 'not swapped'}"
    else:
        body = f"delete {op.key!r}"
        result = "" if op.output is None else f" -> {'deleted' if op.output else 'nothing'}"
    if op.outcome != "ok":
        result = ""
    at = clock if clock is not None else _Clock.for_ops([op])
    end = at.show(op.complete_ns) if op.outcome == "ok" and op.complete_ns is not None else "open"
    return (
        f"#{op.index} p{op.process} {body}{result} [{at.show(op.invoke_ns)} .. {end}] {op.outcome}"
    )


def format_violation(violation: Violation, prefix_tail_ops: int = DEFAULT_PREFIX_TAIL_OPS) -> str:
    """The smallest failing window of one key, as indented lines.

    The window spans the stuck operation and the completed operations overlapping it; operations
    with an unknown outcome overlap everything after their invoke, so they are listed apart and
    do not stretch it.
    """
    prefix = violation.prefix
    shown = prefix[-prefix_tail_ops:] if prefix_tail_ops > 0 else ()
    completed = tuple(op for op in violation.concurrent if op.outcome == "ok")
    pending = tuple(op for op in violation.concurrent if op.outcome != "ok")
    window = (violation.stuck, *completed)
    clock = _Clock.for_ops((*shown, *window))
    placed = {op.index for op in prefix}

    def listed(op: Operation) -> str:
        mark = "  (in prefix)" if op.index in placed else ""
        return f"    {format_operation(op, clock)}{mark}"

    lines = [f"key {violation.key!r}: not linearizable"]
    lines.append(f"  longest linearizable prefix: {len(prefix)} operation(s)")
    if len(prefix) > len(shown):
        lines.append(f"    ... {len(prefix) - len(shown)} earlier operation(s)")
    lines.extend(f"    {format_operation(op, clock)}" for op in shown)
    lines.append(f"  state after the prefix: {violation.state}")
    lines.append("  cannot be placed (no order lets it take effect before it returned):")
    lines.append(f"    {format_operation(violation.stuck, clock)}")
    if completed:
        lines.append("  concurrent with it:")
        lines.extend(listed(op) for op in completed)
    else:
        lines.append("  no completed operation is concurrent with it")
    if pending:
        lines.append("  outcome unknown, invoked before it returned (may have taken effect):")
        lines.extend(listed(op) for op in pending)
    start_ns = min(op.invoke_ns for op in window)
    ends = [op.complete_ns for op in window if op.outcome == "ok" and op.complete_ns is not None]
    end = clock.show(max(ends)) if ends else "open"
    lines.append(f"  failing window: [{clock.show(start_ns)} .. {end}]")
    return "\n".join(lines)


def format_result(result: CheckResult) -> str:
    """The full report: a summary line, then every violation's window."""
    op_count = sum(k.op_count for k in result.keys)
    steps = sum(k.steps for k in result.keys)
    head = f"linearizability: {result.verdict.value}"
    if result.verdict is Verdict.UNKNOWN:
        head += f" ({result.reason or 'budget exhausted'})"
    lines = [
        head,
        f"  {len(result.keys)} key(s), {op_count} operation(s) checked, {steps} search step(s), "
        f"{result.elapsed_s:.3f}s",
    ]
    unknown = [k.key for k in result.keys if k.verdict is Verdict.UNKNOWN]
    if unknown:
        shown = ", ".join(repr(k) for k in unknown[:10])
        more = f" and {len(unknown) - 10} more" if len(unknown) > 10 else ""
        lines.append(f"  undecided key(s): {shown}{more}")
    for violation in result.violations:
        lines.append(format_violation(violation))
    return "\n".join(lines)
