"""etcd's simple tokens: ``<16 random letters>.<raft index>``, kept in memory per member.

The proposer draws the random prefix; the member applying the Authenticate entry appends the
entry's index, so every member learns the same token from the same entry (etcd's design: a
token works on any member once that member has applied its entry). Tokens are not persisted:
a restarted member forgets them, and clients authenticate again ("invalid auth token").

A token lives `ttl_s` after its last use (etcd's simpleTokenKeeper resets the timer on every
lookup). The clock is local to the member and never reaches the replicated state.
"""

from __future__ import annotations

import secrets
import string
import time
from collections.abc import Callable

__all__ = [
    "DEFAULT_TOKEN_TTL_S",
    "MAX_TOKENS",
    "TOKEN_PREFIX_LENGTH",
    "SimpleTokens",
    "new_token_prefix",
    "token_index",
]

DEFAULT_TOKEN_TTL_S = 300.0
TOKEN_PREFIX_LENGTH = 16
#: tokens kept at once; past it the least recently used are dropped (etcd keeps any number).
MAX_TOKENS = 100_000
_LETTERS = string.ascii_letters


def token_index(token: str) -> int | None:
    """The raft index a simple token was issued at (its suffix), or None if it has none.

    A member must have applied that index before it can know the token: etcd waits for it
    before looking the token up, and so does kvorum's member."""
    prefix, dot, index = token.partition(".")
    if not dot or not prefix or "." in index or not index.isdigit() or not index.isascii():
        return None
    return int(index)


def new_token_prefix() -> str:
    """16 letters from the OS's cryptographic source (etcd's genTokenPrefix)."""
    return "".join(secrets.choice(_LETTERS) for _ in range(TOKEN_PREFIX_LENGTH))


class SimpleTokens:
    """token -> user name, each expiring `ttl_s` after its last use."""

    def __init__(
        self,
        ttl_s: float = DEFAULT_TOKEN_TTL_S,
        *,
        clock: Callable[[], float] = time.monotonic,
        max_tokens: int = MAX_TOKENS,
    ) -> None:
        if ttl_s <= 0:
            raise ValueError("ttl_s must be > 0")
        if max_tokens < 1:
            raise ValueError("max_tokens must be >= 1")
        self.ttl_s = ttl_s
        self._clock = clock
        self._max_tokens = max_tokens
        #: token -> (user name, expiry); insertion order is least recently used first.
        self._tokens: dict[str, tuple[str, float]] = {}

    def __len__(self) -> int:
        return len(self._tokens)

    def assign(self, token: str, username: str) -> None:
        self._tokens.pop(token, None)
        while len(self._tokens) >= self._max_tokens:
            del self._tokens[next(iter(self._tokens))]
        self._tokens[token] = (username, self._clock() + self.ttl_s)

    def user_of(self, token: str) -> str | None:
        """The user a live token names (its lifetime starts again), or None."""
        entry = self._tokens.pop(token, None)
        if entry is None:
            return None
        username, expiry = entry
        now = self._clock()
        if now >= expiry:
            return None
        self._tokens[token] = (username, now + self.ttl_s)
        return username

    def invalidate_user(self, username: str) -> None:
        """Forget every token of `username` (deleted, or its password changed)."""
        for token in [t for t, (user, _) in self._tokens.items() if user == username]:
            del self._tokens[token]

    def clear(self) -> None:
        """Forget every token (auth disabled)."""
        self._tokens.clear()
