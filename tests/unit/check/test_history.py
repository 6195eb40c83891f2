"""The JSON-lines history format: what it accepts, what it rejects, and that it round-trips."""

from __future__ import annotations

import random

import pytest

from kvorum.check import HistoryError, dump_history, make_operation, parse_history
from tests.unit.check.helpers import generate_history


def test_documented_example_parses() -> None:
    text = """
{"process": 3, "op": "write", "key": "k1", "value": "v7", "invoke_ns": 1200, "complete_ns": 1850, "outcome": "ok"}
{"process": 1, "op": "read", "key": "k1", "invoke_ns": 1300, "complete_ns": 1400, "outcome": "ok", "output": "v7"}

{"process": 2, "op": "cas", "key": "k1", "expected": "v7", "value": "v8", "invoke_ns": 1500, "complete_ns": 1900, "outcome": "ok", "output": true, "revision": 9, "request_id": "x"}
{"process": "c4", "op": "delete", "key": "k1", "invoke_ns": 2000, "complete_ns": null, "outcome": "unknown"}
"""  # noqa: E501
    ops = parse_history(text.splitlines())
    assert [op.index for op in ops] == [0, 1, 2, 3]
    assert [op.kind for op in ops] == ["write", "read", "cas", "delete"]
    assert ops[1].output == "v7"
    assert ops[2].expected == "v7" and ops[2].value == "v8" and ops[2].output is True
    assert ops[2].revision == 9
    assert ops[3].process == "c4" and ops[3].complete_ns is None and ops[3].is_open


def test_round_trip() -> None:
    ops = generate_history(random.Random(3), 300, keys=3, unknown_share=0.1, fail_share=0.1)
    assert parse_history(dump_history(ops)) == ops


def test_absent_values_are_null() -> None:
    line = (
        '{"op": "cas", "key": "k", "expected": null, "value": "a", "invoke_ns": 0, '
        '"complete_ns": 1, "outcome": "ok", "output": false}\n'
        '{"op": "read", "key": "k", "invoke_ns": 2, "complete_ns": 3, "outcome": "ok", '
        '"output": null}'
    )
    cas, read = parse_history(line.splitlines())
    assert cas.expected is None and cas.output is False
    assert read.output is None


def test_outputs_of_unanswered_operations_are_dropped() -> None:
    op = make_operation(0, 1, "read", "k", 0, None, "unknown", output="junk")
    assert op.output is None


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("not json", "not JSON"),
        ("[1, 2]", "expected a JSON object"),
        ('{"op": "scan", "key": "k", "invoke_ns": 0, "outcome": "fail"}', "op must be one of"),
        ('{"op": "read", "key": 1, "invoke_ns": 0, "outcome": "fail"}', "key must be a string"),
        ('{"op": "read", "key": "k", "invoke_ns": 0, "outcome": "maybe"}', "outcome must be"),
        ('{"op": "read", "key": "k", "invoke_ns": true, "outcome": "fail"}', "invoke_ns must be"),
        ('{"op": "read", "key": "k", "invoke_ns": 5, "outcome": "ok", "output": null}', "needs"),
        (
            '{"op": "read", "key": "k", "invoke_ns": 5, "complete_ns": 4, "outcome": "ok", '
            '"output": null}',
            "is before invoke_ns",
        ),
        (
            '{"op": "read", "key": "k", "invoke_ns": 5, "complete_ns": 6, "outcome": "ok"}',
            "needs an output field",
        ),
        ('{"op": "write", "key": "k", "invoke_ns": 5, "outcome": "fail"}', "needs a string value"),
        (
            '{"op": "cas", "key": "k", "value": "b", "invoke_ns": 5, "outcome": "fail"}',
            "needs an expected field",
        ),
        (
            '{"op": "cas", "key": "k", "value": "b", "expected": "a", "invoke_ns": 5, '
            '"complete_ns": 6, "outcome": "ok", "output": "yes"}',
            "needs a boolean output",
        ),
    ],
)
def test_bad_records_are_rejected_with_their_line(line: str, message: str) -> None:
    with pytest.raises(HistoryError, match=message) as info:
        parse_history(["", line])
    assert str(info.value).startswith("line 2:")
