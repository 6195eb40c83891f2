"""Simple tokens: a lifetime from the last use, forgotten per user or all at once."""

from __future__ import annotations

import pytest

from kvorum.auth import SimpleTokens, new_token_prefix, token_index


class Clock:
    def __init__(self) -> None:
        self.now_s = 100.0

    def __call__(self) -> float:
        return self.now_s


def test_token_expires_ttl_after_last_use() -> None:
    clock = Clock()
    tokens = SimpleTokens(10.0, clock=clock)
    tokens.assign("abc.5", "alice")
    clock.now_s += 9.0
    assert tokens.user_of("abc.5") == "alice"  # used: lives 10 s from now
    clock.now_s += 9.0
    assert tokens.user_of("abc.5") == "alice"
    clock.now_s += 10.0
    assert tokens.user_of("abc.5") is None
    assert len(tokens) == 0


def test_invalidate_user_and_clear() -> None:
    tokens = SimpleTokens(10.0, clock=Clock())
    tokens.assign("a.1", "alice")
    tokens.assign("a.2", "alice")
    tokens.assign("b.3", "bob")
    tokens.invalidate_user("alice")
    assert tokens.user_of("a.1") is None
    assert tokens.user_of("a.2") is None
    assert tokens.user_of("b.3") == "bob"
    tokens.clear()
    assert tokens.user_of("b.3") is None


def test_least_recently_used_token_goes_first_past_the_limit() -> None:
    tokens = SimpleTokens(10.0, clock=Clock(), max_tokens=2)
    tokens.assign("t.1", "a")
    tokens.assign("t.2", "b")
    assert tokens.user_of("t.1") == "a"  # t.2 is now the least recently used
    tokens.assign("t.3", "c")
    assert tokens.user_of("t.2") is None
    assert tokens.user_of("t.1") == "a"
    assert tokens.user_of("t.3") == "c"


def test_prefix_is_sixteen_letters_and_random() -> None:
    prefixes = {new_token_prefix() for _ in range(20)}
    assert len(prefixes) == 20
    assert all(len(p) == 16 and p.isalpha() and p.isascii() for p in prefixes)


def test_bad_limits_are_refused() -> None:
    with pytest.raises(ValueError):
        SimpleTokens(0)
    with pytest.raises(ValueError):
        SimpleTokens(1.0, max_tokens=0)


def test_token_index_is_the_suffix_after_the_one_dot() -> None:
    assert token_index("abcdefghijklmnop.42") == 42
    for bad in ("abc", "abc.", ".42", "a.b.42", "abc.-1", "abc.4x", "abc.\u0664"):
        assert token_index(bad) is None, bad
