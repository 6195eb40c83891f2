"""Sequential specifications the checker linearizes histories against.

A model is a pure state machine: `step` says whether an operation, taken as one atomic step from
`state`, could have produced the output the client saw, and returns the next state. States must
be hashable and compare by value, because the search memoizes (linearized set, state) pairs
(Lowe, "Testing for linearizability", 2017).
"""

from __future__ import annotations

from collections.abc import Hashable
from typing import Protocol, TypeVar

from kvorum.check.history import Operation

S = TypeVar("S", bound=Hashable)


class Model(Protocol[S]):
    """A sequential specification over one partition of the history (here: one key)."""

    def init(self) -> S:
        """The state before any operation."""
        ...

    def step(self, state: S, op: Operation) -> tuple[bool, S]:
        """(legal, next state) for `op` applied atomically to `state`.

        Called only for operations whose outcome is ``ok`` or ``unknown``; for ``unknown`` the
        output is not known, so the step must be legal whatever the state (the operation may
        also never happen: the search can always place it last, after every completed one).
        """
        ...

    def describe(self, state: S) -> str:
        """A short human-readable rendering of `state` for reports."""
        ...


RegisterState = str | None


class RegisterModel:
    """etcd's view of a single key as a register: a value, or None when the key is absent.

    read   — legal iff the value read equals the state.
    write  — always legal; the key now holds the value.
    cas    — swaps iff the state equals ``expected`` (None: the key is absent); an ok cas is legal
             iff its reported success matches; an unknown cas swaps exactly when it matches.
    delete — the key becomes absent; if the client saw whether something was deleted, that must
             match whether the key existed.
    """

    def init(self) -> RegisterState:
        return None

    def step(self, state: RegisterState, op: Operation) -> tuple[bool, RegisterState]:
        # Definite failures are removed before the search: they did not happen.
        assert op.outcome != "fail", "fail operations must be filtered out before the search"
        known = op.outcome == "ok"
        kind = op.kind
        if kind == "read":
            return (not known or op.output == state), state
        if kind == "write":
            return True, op.value
        if kind == "cas":
            matches = state == op.expected
            if known and op.output is not matches:
                return False, state
            return True, (op.value if matches else state)
        # delete
        if known and op.output is not None and op.output is not (state is not None):
            return False, state
        return True, None

    def describe(self, state: RegisterState) -> str:
        return "<absent>" if state is None else repr(state)
