"""The client-history format the linearizability checker reads: JSON lines, one per operation.

A fault test records, for every request a client sent, one JSON object on its own line::

    {"process": 3, "op": "write", "key": "k1", "value": "v7",
     "invoke_ns": 1200, "complete_ns": 1850, "outcome": "ok"}
    {"process": 1, "op": "read", "key": "k1",
     "invoke_ns": 1300, "complete_ns": 1400, "outcome": "ok", "output": "v7"}
    {"process": 2, "op": "cas", "key": "k1", "expected": "v7", "value": "v8",
     "invoke_ns": 1500, "complete_ns": 1900, "outcome": "ok", "output": true}
    {"process": 4, "op": "delete", "key": "k1",
     "invoke_ns": 2000, "complete_ns": null, "outcome": "unknown"}

Fields:

- ``process`` (int or str, default 0): the client that issued the request; a client has at most
  one request in flight, but the checker does not rely on that (it only names it in reports).
- ``op``: ``read`` | ``write`` | ``cas`` | ``delete``.
- ``key`` (str): every operation touches exactly one key (that is what lets the checker split the
  history by key, P-compositionality).
- ``value`` (str): the value written by ``write``, or the new value of ``cas``.
- ``expected`` (str or null): the value ``cas`` compares against; null means "the key is absent"
  (etcd's ``create_revision == 0`` compare).
- ``invoke_ns`` / ``complete_ns`` (int): monotonic clock readings, in nanoseconds, taken just
  before the request was sent and just after its response arrived. ``complete_ns`` may be null
  or missing unless the outcome is ``ok``.
- ``outcome``: ``ok`` (the response arrived and says what happened), ``fail`` (etcd answered with
  a definite error: the operation did not take effect), ``unknown`` (timeout, connection lost: it
  may have taken effect at any moment after ``invoke_ns``, or never).
- ``output``: for ``read``, the value read (null: the key was absent); for ``cas``, whether the
  swap happened (bool); for ``delete``, optionally whether a key was deleted (bool). Only read for
  ``ok`` outcomes.
- ``revision`` (int, optional): the header revision of the response, kept for later checks.

Unknown fields are ignored so a recorder may add its own (an error text, a request id).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, cast

OpKind = Literal["read", "write", "cas", "delete"]
Outcome = Literal["ok", "fail", "unknown"]

OP_KINDS: tuple[OpKind, ...] = ("read", "write", "cas", "delete")
OUTCOMES: tuple[Outcome, ...] = ("ok", "fail", "unknown")

# A history file is read whole into memory; this bounds what one check may take on.
MAX_HISTORY_OPS = 5_000_000


class HistoryError(ValueError):
    """A history line that does not follow the format; the message names the line."""


@dataclass(frozen=True, slots=True)
class Operation:
    """One client request and what the client learned about it.

    Invariants (enforced by `make_operation` and the parser): ``complete_ns`` is set and
    ``>= invoke_ns`` when ``outcome == "ok"``; ``value`` is set for write and cas; ``output`` is a
    bool for an ok cas and ``str | None`` for an ok read. ``index`` is the position in the
    history (0-based, blank lines not counted); reports name operations by it.
    """

    index: int
    process: int | str
    kind: OpKind
    key: str
    invoke_ns: int
    complete_ns: int | None
    outcome: Outcome
    value: str | None = None
    expected: str | None = None
    output: str | bool | None = None
    revision: int | None = None

    @property
    def is_open(self) -> bool:
        """True when the operation never completed for sure: it stays pending to the end."""
        return self.outcome == "unknown"


def make_operation(
    index: int,
    process: int | str,
    kind: OpKind,
    key: str,
    invoke_ns: int,
    complete_ns: int | None,
    outcome: Outcome = "ok",
    *,
    value: str | None = None,
    expected: str | None = None,
    output: str | bool | None = None,
    revision: int | None = None,
) -> Operation:
    """Build an `Operation`, checking the invariants the checker depends on."""
    if kind not in OP_KINDS:
        raise HistoryError(f"op must be one of {', '.join(OP_KINDS)}, got {kind!r}")
    if outcome not in OUTCOMES:
        raise HistoryError(f"outcome must be one of {', '.join(OUTCOMES)}, got {outcome!r}")
    if not isinstance(key, str):
        raise HistoryError(f"key must be a string, got {key!r}")
    if not _is_int(invoke_ns):
        raise HistoryError(f"invoke_ns must be an integer, got {invoke_ns!r}")
    if complete_ns is not None and not _is_int(complete_ns):
        raise HistoryError(f"complete_ns must be an integer or null, got {complete_ns!r}")
    if outcome == "ok":
        if complete_ns is None:
            raise HistoryError("an ok operation needs complete_ns")
        if complete_ns < invoke_ns:
            raise HistoryError(f"complete_ns {complete_ns} is before invoke_ns {invoke_ns}")
    if kind in ("write", "cas") and not isinstance(value, str):
        raise HistoryError(f"{kind} needs a string value, got {value!r}")
    if kind == "cas" and expected is not None and not isinstance(expected, str):
        raise HistoryError(f"cas expected must be a string or null, got {expected!r}")
    if outcome == "ok":
        if kind == "read" and output is not None and not isinstance(output, str):
            raise HistoryError(f"read output must be a string or null, got {output!r}")
        if kind == "cas" and not isinstance(output, bool):
            raise HistoryError(f"an ok cas needs a boolean output, got {output!r}")
        if kind == "delete" and output is not None and not isinstance(output, bool):
            raise HistoryError(f"delete output must be a boolean or null, got {output!r}")
    if revision is not None and not _is_int(revision):
        raise HistoryError(f"revision must be an integer, got {revision!r}")
    return Operation(
        index=index,
        process=process,
        kind=kind,
        key=key,
        invoke_ns=invoke_ns,
        complete_ns=complete_ns,
        outcome=outcome,
        value=value,
        expected=expected if kind == "cas" else None,
        # Outputs of fail/unknown operations carry no information; drop them so no model
        # can be misled by a recorder that filled them in.
        output=output if outcome == "ok" else None,
        revision=revision,
    )


def _is_int(value: object) -> bool:
    # bool is an int subclass in Python, and never a valid timestamp or revision.
    return isinstance(value, int) and not isinstance(value, bool)


def operation_from_dict(index: int, record: dict[str, Any]) -> Operation:
    """Turn one decoded JSON record into an `Operation` (raises `HistoryError`)."""
    process = record.get("process", 0)
    if not isinstance(process, int | str) or isinstance(process, bool):
        raise HistoryError(f"process must be an integer or string, got {process!r}")
    kind = record.get("op")
    if kind == "cas" and "expected" not in record:
        raise HistoryError("cas needs an expected field (null for 'key absent')")
    if kind == "read" and record.get("outcome") == "ok" and "output" not in record:
        raise HistoryError("an ok read needs an output field (null for 'key absent')")
    return make_operation(
        index,
        process,
        cast(OpKind, kind),
        record.get("key"),  # type: ignore[arg-type]  # validated by make_operation
        record.get("invoke_ns"),  # type: ignore[arg-type]
        record.get("complete_ns"),
        cast(Outcome, record.get("outcome")),
        value=record.get("value"),
        expected=record.get("expected"),
        output=record.get("output"),
        revision=record.get("revision"),
    )


def operation_to_dict(op: Operation) -> dict[str, Any]:
    """The JSON record for `op`, the inverse of `operation_from_dict` (``index`` is implicit)."""
    record: dict[str, Any] = {
        "process": op.process,
        "op": op.kind,
        "key": op.key,
        "invoke_ns": op.invoke_ns,
        "complete_ns": op.complete_ns,
        "outcome": op.outcome,
    }
    if op.kind in ("write", "cas"):
        record["value"] = op.value
    if op.kind == "cas":
        record["expected"] = op.expected
    if op.outcome == "ok" and (op.kind in ("read", "cas") or op.output is not None):
        record["output"] = op.output
    if op.revision is not None:
        record["revision"] = op.revision
    return record


def parse_history(lines: Iterable[str]) -> list[Operation]:
    """Parse JSON-lines text into operations, numbered in file order; blank lines are skipped."""
    ops: list[Operation] = []
    for line_no, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        if len(ops) >= MAX_HISTORY_OPS:
            raise HistoryError(f"history has more than {MAX_HISTORY_OPS} operations")
        try:
            record = json.loads(line)
        except json.JSONDecodeError as err:
            raise HistoryError(f"line {line_no}: not JSON: {err}") from None
        if not isinstance(record, dict):
            raise HistoryError(f"line {line_no}: expected a JSON object")
        try:
            ops.append(operation_from_dict(len(ops), record))
        except HistoryError as err:
            raise HistoryError(f"line {line_no}: {err}") from None
    return ops


def load_history(path: str | Path) -> list[Operation]:
    """Read and parse a history file."""
    with open(path, encoding="utf-8") as f:
        return parse_history(f)


def dump_history(ops: Iterable[Operation]) -> Iterator[str]:
    """The JSON lines (with newline) for `ops`, in order."""
    for op in ops:
        yield json.dumps(operation_to_dict(op), separators=(",", ":")) + "\n"
