"""Hand-written histories with known answers: the anomalies a register can show."""

from __future__ import annotations

import itertools

import pytest

from kvorum.check import CheckResult, Verdict, check_operations, format_result
from kvorum.check.linearizability import relevant_operations
from tests.unit.check.helpers import BRUTE_FORCE_MAX_OPS, H, brute_force_linearizable


def check(h: H) -> CheckResult:
    result = check_operations(h.ops)
    # Confirm the small hand-written cases by exhaustive search as well.
    if len(relevant_operations(h.ops)) <= BRUTE_FORCE_MAX_OPS:
        assert (result.verdict is Verdict.OK) == brute_force_linearizable(h.ops)
    return result


def assert_ok(h: H) -> None:
    result = check(h)
    assert result.verdict is Verdict.OK, format_result(result)


def assert_illegal(h: H, stuck_index: int | None = None) -> CheckResult:
    result = check(h)
    assert result.verdict is Verdict.ILLEGAL
    if stuck_index is not None:
        assert result.violations[0].stuck.index == stuck_index, format_result(result)
    return result


def test_empty_history_is_linearizable() -> None:
    assert check_operations([]).verdict is Verdict.OK


def test_sequential_write_then_read() -> None:
    assert_ok(H().write(1, 0, 10, "a").read(2, 20, 30, "a"))


def test_read_of_a_fresh_key_sees_it_absent() -> None:
    assert_ok(H().read(1, 0, 10, None))
    assert_illegal(H().read(1, 0, 10, "ghost"), stuck_index=0)


def test_stale_read_after_a_newer_write_completed() -> None:
    h = H().write(1, 0, 10, "a").write(1, 20, 30, "b").read(2, 40, 50, "a")
    result = assert_illegal(h, stuck_index=2)
    violation = result.violations[0]
    assert [op.index for op in violation.prefix] == [0, 1]
    assert violation.state == "'b'"
    assert violation.concurrent == ()


def test_read_concurrent_with_a_write_may_see_either_value() -> None:
    assert_ok(H().write(1, 0, 10, "a").write(1, 20, 50, "b").read(2, 30, 40, "a"))
    assert_ok(H().write(1, 0, 10, "a").write(1, 20, 50, "b").read(2, 30, 40, "b"))


def test_old_value_after_the_write_completed_is_illegal() -> None:
    h = H().write(1, 0, 10, "a").write(1, 20, 50, "b").read(2, 30, 40, "a").read(2, 60, 70, "a")
    assert_illegal(h, stuck_index=3)


def test_lost_acknowledged_write() -> None:
    assert_illegal(H().write(1, 0, 10, "a").read(2, 20, 30, None), stuck_index=1)


def test_read_cannot_see_a_write_that_starts_later() -> None:
    assert_illegal(H().read(2, 0, 10, "a").write(1, 20, 30, "a"), stuck_index=0)


@pytest.mark.parametrize("winner", ["a", "b"])
def test_concurrent_writes_linearize_in_either_order(winner: str) -> None:
    h = H().write(1, 0, 100, "a").write(2, 0, 100, "b").read(3, 110, 120, winner)
    assert_ok(h)


def test_concurrent_writes_cannot_flip_back_without_a_write() -> None:
    h = H().write(1, 0, 100, "a").write(2, 0, 100, "b")
    h.read(3, 110, 120, "a").read(3, 130, 140, "b")
    result = assert_illegal(h, stuck_index=3)
    assert result.violations[0].state == "'a'"


def test_non_monotonic_reads_during_a_write() -> None:
    # Once a reader saw the new value, a later read cannot return the old one.
    h = H().write(1, 0, 10, "a").write(1, 20, 100, "b")
    h.read(2, 30, 40, "b").read(3, 50, 60, "a")
    result = assert_illegal(h, stuck_index=3)
    assert {op.index for op in result.violations[0].concurrent} == {1}


def test_touching_intervals_count_as_concurrent() -> None:
    # Equal timestamps cannot order two operations: the checker must not blame this.
    assert_ok(H().write(1, 0, 10, "a").read(2, 10, 20, None))
    assert_illegal(H().write(1, 0, 10, "a").read(2, 11, 20, None))


def test_cas_success_and_failure_that_match_the_state() -> None:
    h = H().write(1, 0, 10, "a").cas(2, 20, 30, "a", "b", True)
    h.cas(3, 40, 50, "a", "c", False).read(1, 60, 70, "b")
    assert_ok(h)


def test_cas_reported_swapped_although_the_value_differed() -> None:
    assert_illegal(H().write(1, 0, 10, "a").cas(2, 20, 30, "x", "b", True), stuck_index=1)


def test_cas_reported_not_swapped_although_the_value_matched() -> None:
    assert_illegal(H().write(1, 0, 10, "a").cas(2, 20, 30, "a", "b", False), stuck_index=1)


def test_two_concurrent_cas_from_the_same_value_cannot_both_win() -> None:
    h = H().write(1, 0, 10, "a").cas(2, 20, 50, "a", "b", True).cas(3, 20, 50, "a", "c", True)
    assert_illegal(h)
    h = H().write(1, 0, 10, "a").cas(2, 20, 50, "a", "b", True).cas(3, 20, 50, "a", "c", False)
    assert_ok(h)


def test_create_if_absent_succeeds_once() -> None:
    assert_ok(H().cas(1, 0, 10, None, "a", True).cas(2, 20, 30, None, "b", False))
    assert_illegal(H().cas(1, 0, 10, None, "a", True).cas(2, 20, 30, None, "b", True))


def test_cas_whose_swap_was_observed_before_it_returned() -> None:
    h = H().write(1, 0, 10, "a").cas(2, 20, 100, "a", "b", True).read(3, 30, 40, "b")
    assert_ok(h)


def test_delete_empties_the_key() -> None:
    h = H().write(1, 0, 10, "a").delete(2, 20, 30, deleted=True).read(1, 40, 50, None)
    assert_ok(h)
    assert_ok(H().delete(1, 0, 10))
    assert_illegal(H().delete(1, 0, 10, deleted=True), stuck_index=0)
    assert_illegal(H().write(1, 0, 10, "a").delete(2, 20, 30, deleted=False), stuck_index=1)
    assert_illegal(H().write(1, 0, 10, "a").delete(2, 20, 30).read(1, 40, 50, "a"))


def test_unknown_write_that_happened() -> None:
    h = H().write(1, 0, 10, "a").write(2, 20, None, "b", outcome="unknown")
    assert_ok(h.read(3, 100, 110, "b"))


def test_unknown_write_that_did_not_happen() -> None:
    h = H().write(1, 0, 10, "a").write(2, 20, None, "b", outcome="unknown")
    assert_ok(h.read(3, 100, 110, "a").read(3, 200, 210, "a"))


def test_unknown_write_can_take_effect_long_after_its_client_gave_up() -> None:
    h = H().write(1, 0, 10, "a").write(2, 20, None, "b", outcome="unknown")
    assert_ok(h.read(3, 100, 110, "a").read(3, 1000, 1010, "b"))


def test_unknown_write_takes_effect_at_most_once() -> None:
    h = H().write(1, 0, 10, "a").write(2, 20, None, "b", outcome="unknown")
    h.read(3, 100, 110, "b").read(3, 120, 130, "a")
    assert_illegal(h, stuck_index=3)


def test_unknown_write_cannot_take_effect_before_it_was_sent() -> None:
    h = H().read(1, 0, 10, "b").write(2, 50, None, "b", outcome="unknown")
    assert_illegal(h, stuck_index=0)


def test_unknown_cas_swaps_only_when_it_matches() -> None:
    h = H().write(1, 0, 10, "a").cas(2, 20, None, "a", "b", None, outcome="unknown")
    assert_ok(h.read(3, 30, 40, "b"))
    h = H().write(1, 0, 10, "x").cas(2, 20, None, "a", "b", None, outcome="unknown")
    assert_illegal(h.read(3, 30, 40, "b"))


def test_failed_write_did_not_happen() -> None:
    h = H().write(1, 0, 10, "a").write(2, 20, 30, "b", outcome="fail")
    assert_ok(h.read(3, 40, 50, "a"))
    h = H().write(1, 0, 10, "a").write(2, 20, 30, "b", outcome="fail")
    assert_illegal(h.read(3, 40, 50, "b"))


def test_reads_without_an_answer_are_ignored() -> None:
    h = H().write(1, 0, 10, "a").read(2, 20, None, "zzz", outcome="unknown")
    assert_ok(h.read(3, 40, 50, "a", outcome="fail").read(3, 60, 70, "a"))


def test_keys_are_checked_independently() -> None:
    h = H().write(1, 0, 10, "a", key="k1").read(2, 20, 30, "a", key="k2")
    h.read(2, 40, 50, "a", key="k1")
    result = check(h)
    assert result.verdict is Verdict.ILLEGAL
    by_key = {k.key: k.verdict for k in result.keys}
    assert by_key == {"k1": Verdict.OK, "k2": Verdict.ILLEGAL}
    assert [v.key for v in result.violations] == ["k2"]


def test_every_illegal_key_is_reported() -> None:
    h = H().read(1, 0, 10, "x", key="k1").read(1, 20, 30, "y", key="k2")
    assert [v.key for v in check_operations(h.ops).violations] == ["k1", "k2"]


def test_many_concurrent_writers_then_a_consistent_read_chain() -> None:
    # Six overlapping writes: the checker must find the one order (among 720) the reads imply.
    def history(seen: str) -> H:
        h = H()
        for p, value in enumerate("abcdef"):
            h.write(p, 0, 1000, value)
        for t, value in zip(itertools.count(100, 20), seen, strict=False):
            h.read(9, t, t + 10, value)
        return h

    assert_ok(history("fdbace"))
    assert_ok(history("ffaae"))
    assert_illegal(history("fdbacef"), stuck_index=12)
    assert_illegal(history("abca"), stuck_index=9)


def test_report_names_the_window() -> None:
    h = H().write(1, 0, 10, "a").write(1, 20, 100, "b")
    h.read(2, 30, 40, "b").read(3, 50, 60, "a")
    text = format_result(check_operations(h.ops))
    assert text.startswith("linearizability: illegal")
    assert "key 'k': not linearizable" in text
    assert "longest linearizable prefix: 3 operation(s)" in text
    assert "#3 p3 read 'k' -> 'a' [+50ns .. +60ns] ok" in text
    assert "#1 p1 write 'k' 'b' [+20ns .. +100ns] ok  (in prefix)" in text
    assert "failing window: [+20ns .. +100ns]" in text
