"""The fault runner's pure parts: the seeded schedule and the minority check."""

from __future__ import annotations

import itertools

from tests.faults.runner import NEMESES, make_schedule, minority_acknowledgements


def test_schedule_replays_from_its_seed_and_stays_within_the_duration() -> None:
    first = make_schedule(7, NEMESES, 60.0, 5)
    assert first == make_schedule(7, NEMESES, 60.0, 5)
    assert first != make_schedule(8, NEMESES, 60.0, 5)
    assert all(0 < f.at_s < 60.0 and 0 <= f.draw < 5 for f in first)
    # One fault at a time: each starts after the previous one is healed.
    for before, after in itertools.pairwise(first):
        assert after.at_s >= before.at_s + before.hold_s
    # Kinds come in shuffled rounds: the first round holds every kind once.
    assert sorted(f.kind for f in first[: len(NEMESES)]) == sorted(NEMESES)


def test_short_schedule_still_has_a_fault() -> None:
    assert len(make_schedule(1, ("kill",), 0.5, 3)) == 1


def test_only_acknowledgements_of_pinned_workers_count() -> None:
    records = [
        {"process": 0, "outcome": "ok"},
        {"process": "pinned1", "outcome": "unknown"},
        {"process": "pinned1", "outcome": "fail"},
        {"process": "pinned2", "outcome": "ok", "op": "write"},
    ]
    assert minority_acknowledgements(records, ["pinned1", "pinned2"]) == [records[3]]
    assert minority_acknowledgements(records, []) == []
