"""Checkers for recorded client histories; today: linearizability of a register per key.

`history` defines the JSON-lines format a fault test records, `model` the sequential
specifications, `linearizability` the search (Wing & Gong / Lowe, split by key), `report` the
readable explanation of a violation, and `cli.main_linearizability` the command line
(``python -m kvorum.check linearizability HISTORY``).
"""

from kvorum.check.cli import main_linearizability
from kvorum.check.history import (
    HistoryError,
    Operation,
    dump_history,
    load_history,
    make_operation,
    parse_history,
)
from kvorum.check.linearizability import (
    CheckResult,
    KeyResult,
    Verdict,
    Violation,
    check_operations,
)
from kvorum.check.model import Model, RegisterModel
from kvorum.check.report import format_result, format_violation

__all__ = [
    "CheckResult",
    "HistoryError",
    "KeyResult",
    "Model",
    "Operation",
    "RegisterModel",
    "Verdict",
    "Violation",
    "check_operations",
    "dump_history",
    "format_result",
    "format_violation",
    "load_history",
    "main_linearizability",
    "make_operation",
    "parse_history",
]
