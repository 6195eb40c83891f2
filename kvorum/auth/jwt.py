"""etcd 3.4's JWT tokens (``--auth-token jwt,sign-method=...,priv-key=...,pub-key=...,ttl=...``).

A JWT carries its user and the auth revision it was issued at (claims ``username``,
``revision``, ``exp``), signed: any member holding the key verifies it alone, so a token issued
by one member works on every member at once and survives restarts, and nothing is kept per
token. The revision claim makes a token stale as soon as users or roles change: the store then
refuses it with "revision of auth store is old" (etcd's ErrAuthOldRevision).

The options are etcd's (`auth/options.go`, `auth/jwt.go`), with its error texts, so a start
that fails on etcd fails here with the same line:

* ``sign-method`` (required): RS256/384/512, PS256/384/512, ES256/384/512, HS256/384/512.
* ``priv-key``: PEM file (RSA, ECDSA) or the raw secret (HMAC); ``pub-key``: PEM file (a
  public key or a certificate). With only ``pub-key`` the member verifies tokens but cannot
  issue them ("verify-only"): Authenticate answers "auth: token signing attempted with
  verify-only key". With both keys the private key signs *and* verifies (etcd ignores the
  public key then; its mismatch check fires only when every field differs, kept as is).
* ``ttl`` (Go duration, default 5m): tokens expire ``ttl`` after they are issued (not after
  their last use, unlike simple tokens).
* Unknown options are warned about and ignored, as etcd does.

Tokens are serialised exactly as etcd's Go library does (header ``{"alg":..,"typ":"JWT"}``,
claims with sorted keys): for RS* and HS* the same claims give the same token bytes.
"""

from __future__ import annotations

import json
import logging
import re
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.serialization import load_pem_private_key, load_pem_public_key
from cryptography.x509 import load_pem_x509_certificate
from jwt.algorithms import ECAlgorithm, HMACAlgorithm, RSAAlgorithm, RSAPSSAlgorithm
from jwt.api_jws import PyJWS
from jwt.exceptions import PyJWTError

from kvorum.auth.errors import AuthError
from kvorum.auth.types import AuthInfo
from kvorum.mvcc.errors import ErrorSpec

__all__ = [
    "DEFAULT_JWT_TTL_S",
    "INVALID_AUTH_OPTIONS",
    "JwtTokens",
    "TokenOptionsError",
    "TokenSigningError",
    "jwt_tokens_from_options",
    "parse_go_duration",
]

logger = logging.getLogger("kvorum.auth")

DEFAULT_JWT_TTL_S = 300.0
INVALID_AUTH_OPTIONS = "auth: invalid auth options"
_INVALID_SIGN_METHOD = "auth: invalid auth signature method"
_MISSING_KEY = "auth: missing key data"
_KEY_MISMATCH = "auth: public and private keys don't match"
_NOT_PEM = "invalid key: Key must be a PEM encoded PKCS1 or PKCS8 key"
_KNOWN_OPTIONS = ("sign-method", "pub-key", "priv-key", "ttl")

_HASHES = {"256": HMACAlgorithm.SHA256, "384": HMACAlgorithm.SHA384, "512": HMACAlgorithm.SHA512}
_FAMILIES = {"RS": "rsa", "PS": "rsa", "ES": "ec", "HS": "hmac"}
#: Names Go's jwt library knows but etcd's Key() cannot use: start fails with this text.
_UNSUPPORTED = {
    "none": "unsupported signing method: *jwt.signingMethodNone",
    "EdDSA": "unsupported signing method: *jwt.SigningMethodEd25519",
}


class TokenOptionsError(ValueError):
    """`--auth-token` cannot be used; the message is etcd's text for the same options."""


class TokenSigningError(AuthError):
    """Authenticate on a member that cannot sign (etcd sends its own text as UNKNOWN)."""

    spec = ErrorSpec(
        "auth: token signing attempted with verify-only key",
        "UNKNOWN",
        "auth: token signing attempted with verify-only key",
    )


class _RawSecretHMAC(HMACAlgorithm):
    """HMAC over the secret file's bytes as they are: etcd takes any file as the secret,
    where PyJWT refuses one that looks like a PEM key, and warns (on every token) about a
    short one. The key was accepted at start, as etcd accepts it."""

    def prepare_key(self, key: str | bytes) -> bytes:
        return key.encode() if isinstance(key, str) else bytes(key)

    def check_key_length(self, key: bytes) -> str | None:
        return None


class _AnyLengthRSA(RSAAlgorithm):
    """No per-token warning for an RSA key under 2048 bits (etcd takes any size)."""

    def check_key_length(self, key: Any) -> str | None:
        return None


class _AnyLengthRSAPSS(RSAPSSAlgorithm):
    def check_key_length(self, key: Any) -> str | None:
        return None


def _signer() -> PyJWS:
    jws = PyJWS(algorithms=[])
    for bits, hash_alg in _HASHES.items():
        sha = getattr(RSAAlgorithm, f"SHA{bits}")
        jws.register_algorithm(f"RS{bits}", _AnyLengthRSA(sha))
        jws.register_algorithm(f"PS{bits}", _AnyLengthRSAPSS(sha))
        jws.register_algorithm(f"ES{bits}", ECAlgorithm(getattr(ECAlgorithm, f"SHA{bits}")))
        jws.register_algorithm(f"HS{bits}", _RawSecretHMAC(hash_alg))
    return jws


_JWS = _signer()

# --- Go's time.ParseDuration ----------------------------------------------------------------

_DURATION_UNITS = {
    "ns": 1e-9,
    "us": 1e-6,
    "µs": 1e-6,
    "μs": 1e-6,
    "ms": 1e-3,
    "s": 1.0,
    "m": 60.0,
    "h": 3600.0,
}
_DURATION_PART = re.compile(r"(\d+\.?\d*|\.\d+)(ns|us|µs|μs|ms|s|m|h)")


def parse_go_duration(text: str) -> float:
    """Seconds in a Go duration ("5m", "1h30m", "1.5s", "0"); ValueError with Go's text."""
    body = text[1:] if text[:1] in "+-" else text
    if body == "0":
        return 0.0
    pos, total = 0, 0.0
    while pos < len(body):
        match = _DURATION_PART.match(body, pos)
        if match is None:
            raise ValueError(f'time: invalid duration "{text}"')
        total += float(match.group(1)) * _DURATION_UNITS[match.group(2)]
        pos = match.end()
    if not body:
        raise ValueError(f'time: invalid duration "{text}"')
    return -total if text.startswith("-") else total


# --- keys -----------------------------------------------------------------------------------


def _is_pem(data: bytes) -> bool:
    return b"-----BEGIN " in data


def _private_key(data: bytes, family: str) -> rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey:
    name = "RSA" if family == "rsa" else "ECDSA"
    if not _is_pem(data):
        raise TokenOptionsError(_NOT_PEM)
    try:
        key = load_pem_private_key(data, password=None)
    except (ValueError, TypeError, UnsupportedAlgorithm) as exc:
        raise TokenOptionsError(f"key is not a valid {name} private key ({exc})") from None
    if family == "rsa" and isinstance(key, rsa.RSAPrivateKey):
        return key
    if family == "ec" and isinstance(key, ec.EllipticCurvePrivateKey):
        return key
    raise TokenOptionsError(f"key is not a valid {name} private key")


def _public_key(data: bytes, family: str) -> rsa.RSAPublicKey | ec.EllipticCurvePublicKey:
    name = "RSA" if family == "rsa" else "ECDSA"
    if not _is_pem(data):
        raise TokenOptionsError(_NOT_PEM)
    key: Any
    try:
        key = load_pem_public_key(data)
    except (ValueError, TypeError, UnsupportedAlgorithm):
        try:  # Go's parser takes a certificate's key too
            key = load_pem_x509_certificate(data).public_key()
        except ValueError as exc:
            raise TokenOptionsError(f"key is not a valid {name} public key ({exc})") from None
    if family == "rsa" and isinstance(key, rsa.RSAPublicKey):
        return key
    if family == "ec" and isinstance(key, ec.EllipticCurvePublicKey):
        return key
    raise TokenOptionsError(f"key is not a valid {name} public key")


def _keys_mismatch(private: Any, public: Any) -> bool:
    """etcd's check, quirk included: a mismatch is seen only when *every* compared field
    differs (its `&&` where `||` was meant), so two RSA keys sharing e=65537, or two ECDSA
    keys on one curve, always pass; the private key then signs and verifies alone."""
    if isinstance(private, rsa.RSAPrivateKey) and isinstance(public, rsa.RSAPublicKey):
        mine, theirs = private.public_key().public_numbers(), public.public_numbers()
        return mine.e != theirs.e and mine.n != theirs.n
    if isinstance(private, ec.EllipticCurvePrivateKey) and isinstance(
        public, ec.EllipticCurvePublicKey
    ):
        mine_ec, theirs_ec = private.public_key().public_numbers(), public.public_numbers()
        return (
            mine_ec.curve.name != theirs_ec.curve.name
            and mine_ec.x != theirs_ec.x
            and mine_ec.y != theirs_ec.y
        )
    return False


# --- the provider ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Claims:
    username: str
    revision: int


def _claims_of(payload: bytes, now: int) -> _Claims | None:
    """The token's user and revision if its claims are well formed and current, as Go's
    MapClaims.Valid decides (exp, nbf, iat, each only if present; exp inclusive)."""
    try:
        claims = json.loads(payload)
    except ValueError:
        return None
    if not isinstance(claims, dict):
        return None
    times: dict[str, int] = {}
    for name in ("exp", "nbf", "iat"):
        value = claims.get(name)
        if value is None:
            continue
        if isinstance(value, bool) or not isinstance(value, int | float):
            return None
        times[name] = int(value)  # Go truncates the float64 it decoded
    if now > times.get("exp", now) or now < times.get("nbf", now) or now < times.get("iat", now):
        return None
    username, revision = claims.get("username"), claims.get("revision")
    if not isinstance(username, str):
        return None
    if isinstance(revision, bool) or not isinstance(revision, int | float) or revision < 0:
        return None
    return _Claims(username, int(revision))


class JwtTokens:
    """Signs and verifies etcd's JWTs; holds no per-token state (see the module docstring).

    `clock` is wall-clock seconds: ``exp`` is compared on every member, so it must be the
    same time scale everywhere (members' clocks are assumed roughly in step, as in etcd).
    """

    def __init__(
        self,
        sign_method: str,
        key: Any,
        *,
        ttl_s: float = DEFAULT_JWT_TTL_S,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.sign_method = sign_method
        self.ttl_s = ttl_s
        self._clock = clock
        self._signing_key: Any = None
        self._verify_key: Any
        if isinstance(key, bytes):  # HMAC: one secret signs and verifies
            self._signing_key, self._verify_key = key, key
        elif isinstance(key, rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey):
            self._signing_key, self._verify_key = key, key.public_key()
        else:
            self._verify_key = key
        #: only a public key: tokens are verified, never issued (etcd's verifyOnly).
        self.verify_only = self._signing_key is None

    # Simple tokens wait for their Authenticate entry; a JWT carries everything already.
    def index_to_await(self, token: str) -> int | None:
        return 0

    def issue(self, username: str, revision: int, token_prefix: str, index: int) -> str:
        """A token for `username` at auth `revision` (prefix and index are simple tokens')."""
        if self.verify_only:
            raise TokenSigningError
        exp = int(self._clock() + self.ttl_s)
        # Sorted keys, no spaces: the bytes Go's encoding/json makes of etcd's MapClaims.
        payload = json.dumps(
            {"exp": exp, "revision": revision, "username": username},
            separators=(",", ":"),
            sort_keys=True,
            ensure_ascii=False,
        ).encode()
        try:
            return _JWS.encode(payload, self._signing_key, algorithm=self.sign_method)
        except (PyJWTError, ValueError, TypeError) as exc:
            # A key the method cannot use (say a P-384 key for ES256): an answer, as etcd's.
            raise TokenSigningError(str(exc)) from None

    def lookup(self, token: str, revision: int) -> AuthInfo | None:
        """Who a valid, unexpired token names and the revision it was issued at; else None.

        `revision` (the store's) is not used: staleness is judged where permissions are."""
        try:
            decoded = _JWS.decode_complete(token, self._verify_key, algorithms=[self.sign_method])
        except (PyJWTError, ValueError, TypeError) as exc:
            logger.debug("refused a JWT: %s", exc)  # never the token: it is a credential
            return None
        claims = _claims_of(decoded["payload"], int(self._clock()))
        if claims is None:
            logger.debug("refused a JWT: claims missing, malformed or expired")
            return None
        return AuthInfo(claims.username, claims.revision)

    def invalidate_user(self, username: str) -> None:
        """Nothing to forget: a changed user moves the auth revision, which stales its JWTs."""

    def clear(self) -> None:
        """Nothing kept (auth disable also moves the revision)."""


def jwt_tokens_from_options(
    options: Mapping[str, str], *, clock: Callable[[], float] = time.time
) -> JwtTokens:
    """etcd's newTokenProviderJWT: `options` are the ``key=value`` pairs after ``jwt,``.

    Errors while reading the options (sign method, files, ttl) are logged and reported as
    "auth: invalid auth options"; errors in the keys themselves keep their own text."""
    unknown = sorted(k for k in options if k not in _KNOWN_OPTIONS)
    if unknown:
        logger.warning("unknown JWT options: %s", unknown)
    try:
        ttl_s = DEFAULT_JWT_TTL_S
        if options.get("ttl"):
            ttl_s = parse_go_duration(options["ttl"])
        public = _read(options.get("pub-key", ""))
        private = _read(options.get("priv-key", ""))
        method = options.get("sign-method", "")
        if method not in _UNSUPPORTED and (
            method[:2] not in _FAMILIES or method[2:] not in _HASHES
        ):
            raise ValueError(_INVALID_SIGN_METHOD)
    except (OSError, ValueError) as exc:
        logger.error("problem loading JWT options: %s", exc)
        raise TokenOptionsError(INVALID_AUTH_OPTIONS) from None
    if method in _UNSUPPORTED:
        raise TokenOptionsError(_UNSUPPORTED[method])
    family = _FAMILIES[method[:2]]
    key: Any
    if family == "hmac":
        if not private:
            raise TokenOptionsError(_MISSING_KEY)
        key = private
    else:
        priv = _private_key(private, family) if private else None
        pub = _public_key(public, family) if public else None
        if priv is None and pub is None:
            raise TokenOptionsError(_MISSING_KEY)
        if priv is not None and pub is not None and _keys_mismatch(priv, pub):
            raise TokenOptionsError(_KEY_MISMATCH)
        key = priv if priv is not None else pub
    tokens = JwtTokens(method, key, ttl_s=ttl_s, clock=clock)
    if tokens.verify_only:
        logger.info("JWT tokens are verified only: this member cannot issue them (no priv-key)")
    return tokens


def _read(path: str) -> bytes:
    """A key file's bytes; "" when the option is not given. OSError carries Go-like text."""
    if not path:
        return b""
    try:
        return Path(path).read_bytes()
    except FileNotFoundError:
        raise OSError(f"open {path}: no such file or directory") from None
