"""bcrypt password hashes. Both calls are slow on purpose: run them off the event loop.

The hash is made on the member that receives the request, before it is proposed, so the raft
log and every member's apply only ever see the hash (never the password), and the apply stays
cheap and deterministic (etcd 3.5 does the same; 3.4 hashed inside the apply).
"""

from __future__ import annotations

import bcrypt

__all__ = ["DEFAULT_BCRYPT_COST", "MAX_BCRYPT_COST", "MIN_BCRYPT_COST", "hash_password", "matches"]

MIN_BCRYPT_COST = 4
MAX_BCRYPT_COST = 31
DEFAULT_BCRYPT_COST = 10
#: bcrypt reads at most 72 bytes of a password; longer ones are cut there, as Go's bcrypt
#: (before 0.20) and etcd 3.4 do, instead of being refused.
_MAX_PASSWORD_BYTES = 72


def _secret(password: str) -> bytes:
    return password.encode()[:_MAX_PASSWORD_BYTES]


def hash_password(password: str, cost: int = DEFAULT_BCRYPT_COST) -> bytes:
    """The bcrypt hash of `password`; a cost out of bcrypt's range uses the default (etcd)."""
    if not MIN_BCRYPT_COST <= cost <= MAX_BCRYPT_COST:
        cost = DEFAULT_BCRYPT_COST
    return bcrypt.hashpw(_secret(password), bcrypt.gensalt(cost))


def matches(password: str, password_hash: bytes) -> bool:
    """Whether `password` is the one `password_hash` was made from (False for a bad hash)."""
    try:
        return bcrypt.checkpw(_secret(password), password_hash)
    except ValueError:
        return False
