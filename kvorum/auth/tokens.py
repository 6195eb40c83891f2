"""Auth tokens: the provider `--auth-token` names, and etcd's simple tokens.

`token_provider` reads `--auth-token` as etcd's NewTokenProvider does: ``simple`` (the
default), ``jwt,key=value,...`` (`kvorum.auth.jwt`), or ``""`` (no tokens can be issued). Every
provider answers the `TokenProvider` calls the auth store and the member make.

Simple tokens: ``<16 random letters>.<raft index>``, kept in memory per member.

The proposer draws the random prefix; the member applying the Authenticate entry appends the
entry's index, so every member learns the same token from the same entry (etcd's design: a
token works on any member once that member has applied its entry). Tokens are not persisted:
a restarted member forgets them, and clients authenticate again ("invalid auth token").

A token lives `ttl_s` after its last use (etcd's simpleTokenKeeper resets the timer on every
lookup). The clock is local to the member and never reaches the replicated state.
"""

from __future__ import annotations

import logging
import secrets
import string
import time
from collections.abc import Callable
from typing import Protocol

from kvorum.auth.errors import AuthFailedError
from kvorum.auth.jwt import INVALID_AUTH_OPTIONS, TokenOptionsError, jwt_tokens_from_options
from kvorum.auth.types import AuthInfo

__all__ = [
    "DEFAULT_TOKEN_TTL_S",
    "MAX_TOKENS",
    "TOKEN_PREFIX_LENGTH",
    "NopTokens",
    "SimpleTokens",
    "TokenOptionsError",
    "TokenProvider",
    "new_token_prefix",
    "split_token_options",
    "token_index",
    "token_provider",
]

logger = logging.getLogger("kvorum.auth")

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


class TokenProvider(Protocol):
    """What the auth store and the member ask of a kind of token (etcd's TokenProvider)."""

    def index_to_await(self, token: str) -> int | None:
        """The raft index this member must have applied before it can judge `token`
        (0: none); None if the token is malformed for this kind."""
        ...

    def issue(self, username: str, revision: int, token_prefix: str, index: int) -> str:
        """A token for `username`, applying the Authenticate entry at `index` (whose random
        `token_prefix` the proposer drew) at auth `revision`. Raises an `AuthError`."""
        ...

    def lookup(self, token: str, revision: int) -> AuthInfo | None:
        """Who `token` names and at which auth revision (`revision` is the store's now), or
        None if it names nobody."""
        ...

    def invalidate_user(self, username: str) -> None: ...

    def clear(self) -> None: ...


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

    # --- TokenProvider ---------------------------------------------------------------------

    def index_to_await(self, token: str) -> int | None:
        return token_index(token)

    def issue(self, username: str, revision: int, token_prefix: str, index: int) -> str:
        # The suffix is the entry's index: every member makes the same token.
        token = f"{token_prefix}.{index}"
        self.assign(token, username)
        return token

    def lookup(self, token: str, revision: int) -> AuthInfo | None:
        # A simple token is checked at the store's current revision: it never goes stale,
        # it is dropped instead (password change, user deleted, auth disabled).
        username = self.user_of(token)
        return None if username is None else AuthInfo(username, revision)

    def invalidate_user(self, username: str) -> None:
        """Forget every token of `username` (deleted, or its password changed)."""
        for token in [t for t, (user, _) in self._tokens.items() if user == username]:
            del self._tokens[token]

    def clear(self) -> None:
        """Forget every token (auth disabled)."""
        self._tokens.clear()


class NopTokens:
    """``--auth-token ""``: etcd's tokenNop. No token is ever issued (Authenticate fails as
    a wrong password would) and none is accepted."""

    def index_to_await(self, token: str) -> int | None:
        return 0

    def issue(self, username: str, revision: int, token_prefix: str, index: int) -> str:
        raise AuthFailedError("no token provider")

    def lookup(self, token: str, revision: int) -> AuthInfo | None:
        return None

    def invalidate_user(self, username: str) -> None:
        pass

    def clear(self) -> None:
        pass


def split_token_options(spec: str) -> tuple[str, dict[str, str]]:
    """`--auth-token` as etcd's decomposeOpts reads it: the type, then ``key=value`` pairs
    (each with exactly one ``=``, no key twice)."""
    kind, *pairs = spec.split(",")
    options: dict[str, str] = {}
    for pair in pairs:
        parts = pair.split("=")
        if len(parts) != 2:
            logger.error("invalid token specific option: %s", spec)
            raise TokenOptionsError(INVALID_AUTH_OPTIONS)
        if parts[0] in options:
            logger.error(
                "invalid token specific option, duplicated parameters (%s): %s", parts[0], spec
            )
            raise TokenOptionsError(INVALID_AUTH_OPTIONS)
        options[parts[0]] = parts[1]
    return kind, options


def token_provider(
    spec: str,
    simple_ttl_s: float = DEFAULT_TOKEN_TTL_S,
    *,
    clock: Callable[[], float] = time.time,
) -> TokenProvider:
    """The provider `--auth-token` names (`simple_ttl_s` is `--auth-token-ttl`, for simple
    tokens only). Raises `TokenOptionsError` (a ValueError) with etcd's text."""
    kind, options = split_token_options(spec)
    if kind == "simple":
        logger.warning("simple token is not cryptographically signed")
        return SimpleTokens(simple_ttl_s)
    if kind == "jwt":
        return jwt_tokens_from_options(options, clock=clock)
    if kind == "":
        return NopTokens()
    logger.error("unknown token type: %s", kind)
    raise TokenOptionsError(INVALID_AUTH_OPTIONS)
