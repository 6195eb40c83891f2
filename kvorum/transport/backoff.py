"""Reconnect pacing and log rate limiting (pure: the clock and randomness are passed in)."""

from __future__ import annotations

import random
from collections.abc import Callable, Hashable

__all__ = ["Backoff", "RateLimiter"]


class Backoff:
    """Exponential back-off from ``min_s`` doubling up to ``max_s``, with jitter.

    Each delay is drawn uniformly from the upper half of its step, so members that lost
    a peer at the same moment do not all redial it in lockstep, yet the delay never
    falls below half the step.
    """

    __slots__ = ("_attempts", "_max_s", "_min_s", "_rng")

    def __init__(self, min_s: float, max_s: float, rng: random.Random) -> None:
        if not 0 < min_s <= max_s:
            raise ValueError("need 0 < min_s <= max_s")
        self._min_s = min_s
        self._max_s = max_s
        self._rng = rng
        self._attempts = 0

    def next_delay_s(self) -> float:
        # Cap the exponent so the float never overflows however long a peer stays away.
        step_s = min(self._max_s, self._min_s * 2.0 ** min(self._attempts, 62))
        self._attempts += 1
        return step_s * (0.5 + 0.5 * self._rng.random())

    def reset(self) -> None:
        self._attempts = 0


class RateLimiter:
    """Allows one event per key per ``interval_s``; remembers at most ``max_keys`` keys."""

    __slots__ = ("_clock", "_interval_s", "_last", "_max_keys")

    def __init__(self, interval_s: float, clock: Callable[[], float], max_keys: int = 1024) -> None:
        self._interval_s = interval_s
        self._clock = clock
        self._max_keys = max_keys
        self._last: dict[Hashable, float] = {}

    def allow(self, key: Hashable) -> bool:
        now = self._clock()
        last = self._last.get(key)
        if last is not None and now - last < self._interval_s:
            return False
        if last is None and len(self._last) >= self._max_keys:
            # Forgetting everything only lets a few extra lines through; it keeps memory bounded.
            self._last.clear()
        self._last[key] = now
        return True
