"""`--auth-token jwt,...`: options parsed (and refused) as etcd 3.4 does, each sign-method
family signs and verifies, claims and expiry, verify-only members, and the store's revision
check on a JWT's revision claim. Keys are made here, at test time."""

from __future__ import annotations

import base64
import hmac
import json
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from kvorum.auth import AuthInfo, AuthOldRevisionError, AuthStore, InvalidAuthTokenError
from kvorum.auth.jwt import JwtTokens, TokenSigningError, parse_go_duration
from kvorum.auth.tokens import (
    NopTokens,
    SimpleTokens,
    TokenOptionsError,
    split_token_options,
    token_provider,
)
from kvorum.auth.types import Permission, PermType

NOW = 1_800_000_000.0


class Clock:
    def __init__(self) -> None:
        self.now_s = NOW

    def __call__(self) -> float:
        return self.now_s


def _pem_private(key: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def _pem_public(key: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey) -> bytes:
    return key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )


@pytest.fixture(scope="module")
def keys(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """PEM files: an RSA pair, a second RSA public key, a P-256 pair, a P-384 pair, an
    HMAC secret and a file that is no PEM at all."""
    d = tmp_path_factory.mktemp("jwt-keys")
    rsa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    other_rsa = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    p256 = ec.generate_private_key(ec.SECP256R1())
    p384 = ec.generate_private_key(ec.SECP384R1())
    files = {
        "rsa.key": _pem_private(rsa_key),
        "rsa.pub": _pem_public(rsa_key),
        "other-rsa.pub": _pem_public(other_rsa),
        "p256.key": _pem_private(p256),
        "p256.pub": _pem_public(p256),
        "p384.key": _pem_private(p384),
        "p384.pub": _pem_public(p384),
        "hmac.secret": b"a shared secret, any bytes",
        "not-pem": b"just some bytes",
    }
    for name, data in files.items():
        (d / name).write_bytes(data)
    return {name: d / name for name in files}


def _provider(spec: str, clock: Clock | None = None) -> JwtTokens:
    tokens = token_provider(spec, clock=clock or Clock())
    assert isinstance(tokens, JwtTokens)
    return tokens


def _segments(token: str) -> tuple[dict[str, object], dict[str, object]]:
    def part(text: str) -> dict[str, object]:
        decoded: dict[str, object] = json.loads(
            base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
        )
        return decoded

    header, payload, _signature = token.split(".")
    return part(header), part(payload)


# --- options ------------------------------------------------------------------------------------


def test_token_options_split_as_etcd() -> None:
    assert split_token_options("simple") == ("simple", {})
    assert split_token_options("jwt,sign-method=RS256,ttl=5m") == (
        "jwt",
        {"sign-method": "RS256", "ttl": "5m"},
    )
    assert split_token_options("") == ("", {})
    for bad in ("jwt,sign-method", "jwt,a=b=c", "jwt,ttl=1s,ttl=2s"):
        with pytest.raises(TokenOptionsError, match=r"^auth: invalid auth options$"):
            split_token_options(bad)


def test_provider_kinds() -> None:
    assert isinstance(token_provider("simple"), SimpleTokens)
    assert isinstance(token_provider("simple,ignored=1"), SimpleTokens)
    assert isinstance(token_provider(""), NopTokens)
    with pytest.raises(TokenOptionsError, match=r"^auth: invalid auth options$"):
        token_provider("bogus")


@pytest.mark.parametrize(
    ("options", "error"),
    [
        # etcd 3.4.23's own lines for the same options ("etcdmain: <error>").
        ("sign-method=RS256", "auth: missing key data"),
        ("", "auth: invalid auth options"),
        ("sign-method=XX256,priv-key={rsa.key}", "auth: invalid auth options"),
        ("sign-method=RS256,priv-key=/no/such/file", "auth: invalid auth options"),
        ("sign-method=RS256,priv-key={rsa.key},ttl=abc", "auth: invalid auth options"),
        (
            "sign-method=RS256,priv-key={not-pem}",
            "invalid key: Key must be a PEM encoded PKCS1 or PKCS8 key",
        ),
        (
            "sign-method=RS256,pub-key={not-pem}",
            "invalid key: Key must be a PEM encoded PKCS1 or PKCS8 key",
        ),
        ("sign-method=ES256,priv-key={rsa.key}", "key is not a valid ECDSA private key"),
        ("sign-method=RS256,pub-key={p256.pub}", "key is not a valid RSA public key"),
        ("sign-method=RS512,priv-key={p256.key}", "key is not a valid RSA private key"),
        ("sign-method=ES384,pub-key={rsa.pub}", "key is not a valid ECDSA public key"),
        ("sign-method=HS256,pub-key={rsa.pub}", "auth: missing key data"),
        (
            "sign-method=none,priv-key={rsa.key}",
            "unsupported signing method: *jwt.signingMethodNone",
        ),
        (
            "sign-method=EdDSA,priv-key={rsa.key}",
            "unsupported signing method: *jwt.SigningMethodEd25519",
        ),
        # etcd's mismatch check needs every field to differ: different curves do.
        (
            "sign-method=ES256,priv-key={p256.key},pub-key={p384.pub}",
            "auth: public and private keys don't match",
        ),
    ],
)  # fmt: skip
def test_bad_options_fail_with_etcds_text(keys: dict[str, Path], options: str, error: str) -> None:
    spec = "jwt," + options
    for name, path in keys.items():
        spec = spec.replace("{" + name + "}", str(path))
    with pytest.raises(TokenOptionsError) as failed:
        token_provider(spec)
    assert str(failed.value) == error


def test_etcds_lenient_mismatch_check_is_kept(keys: dict[str, Path]) -> None:
    """Two RSA keys sharing e=65537 pass etcd's check; the private key then signs and
    verifies on its own (the public key is not used)."""
    tokens = _provider(
        f"jwt,sign-method=RS256,priv-key={keys['rsa.key']},pub-key={keys['other-rsa.pub']}"
    )
    assert tokens.lookup(tokens.issue("alice", 3, "", 0), 9) == AuthInfo("alice", 3)


def test_unknown_options_are_ignored(keys: dict[str, Path]) -> None:
    tokens = _provider(f"jwt,sign-method=RS256,priv-key={keys['rsa.key']},colour=blue")
    assert not tokens.verify_only


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("5m", 300.0), ("1h30m", 5400.0), ("1.5s", 1.5), ("250ms", 0.25), ("0", 0.0), ("2h", 7200.0)],
)
def test_go_durations(text: str, seconds: float) -> None:
    assert parse_go_duration(text) == pytest.approx(seconds)


@pytest.mark.parametrize("text", ["", "5", "m", "5x", "1h 2m", "abc"])
def test_bad_go_durations(text: str) -> None:
    with pytest.raises(ValueError, match="time: invalid duration"):
        parse_go_duration(text)


# --- signing and verifying ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "private", "public"),
    [
        ("RS256", "rsa.key", "rsa.pub"),
        ("RS384", "rsa.key", "rsa.pub"),
        ("RS512", "rsa.key", "rsa.pub"),
        ("PS256", "rsa.key", "rsa.pub"),
        ("PS512", "rsa.key", "rsa.pub"),
        ("ES256", "p256.key", "p256.pub"),
        ("ES384", "p384.key", "p384.pub"),
        ("HS256", "hmac.secret", None),
        ("HS512", "rsa.key", None),  # any file is an HMAC secret to etcd, even a PEM key
    ],
)
def test_each_family_signs_and_verifies(
    keys: dict[str, Path], method: str, private: str, public: str | None
) -> None:
    clock = Clock()
    signer = _provider(f"jwt,sign-method={method},priv-key={keys[private]},ttl=10s", clock)
    token = signer.issue("alice", 7, "ignored-prefix", 42)
    header, claims = _segments(token)
    assert header == {"alg": method, "typ": "JWT"}
    assert claims == {"exp": int(NOW) + 10, "revision": 7, "username": "alice"}
    assert signer.lookup(token, 99) == AuthInfo("alice", 7)
    assert signer.index_to_await(token) == 0  # no raft index to wait for
    if public is not None:
        verifier = _provider(f"jwt,sign-method={method},pub-key={keys[public]}", clock)
        assert verifier.verify_only
        assert verifier.lookup(token, 99) == AuthInfo("alice", 7)
        with pytest.raises(TokenSigningError) as refused:
            verifier.issue("alice", 7, "", 0)
        assert refused.value.spec.grpc_text == "auth: token signing attempted with verify-only key"
    # A flipped signature byte, another method, another key: all refused.
    head, body, signature = token.split(".")
    flipped = signature[:-2] + ("A" if signature[-2] != "A" else "B") + signature[-1]
    assert signer.lookup(f"{head}.{body}.{flipped}", 99) is None
    other = "HS256" if method != "HS256" else "HS384"
    assert (
        _provider(f"jwt,sign-method={other},priv-key={keys['hmac.secret']}").lookup(token, 1)
        is None
    )


def test_expiry_is_inclusive_of_the_exp_second(keys: dict[str, Path]) -> None:
    clock = Clock()
    tokens = _provider(f"jwt,sign-method=HS256,priv-key={keys['hmac.secret']},ttl=5m", clock)
    token = tokens.issue("bob", 2, "", 0)
    clock.now_s = NOW + 300.0  # == exp: still valid (Go's now <= exp)
    assert tokens.lookup(token, 2) == AuthInfo("bob", 2)
    clock.now_s = NOW + 301.0
    assert tokens.lookup(token, 2) is None


def test_default_ttl_is_five_minutes(keys: dict[str, Path]) -> None:
    tokens = _provider(f"jwt,sign-method=HS256,priv-key={keys['hmac.secret']}")
    assert tokens.ttl_s == 300.0


def test_malformed_tokens_and_claims_are_refused(keys: dict[str, Path]) -> None:
    tokens = _provider(f"jwt,sign-method=HS256,priv-key={keys['hmac.secret']}")
    assert tokens.lookup("abcdefghijklmnop.12", 1) is None  # a simple token
    assert tokens.lookup("a.b.c", 1) is None
    assert tokens.lookup("", 1) is None
    secret = keys["hmac.secret"].read_bytes()
    for claims in (
        {"revision": 1},  # no user
        {"username": "x"},  # no revision
        {"username": "x", "revision": "1"},
        {"username": 5, "revision": 1},
        {"username": "x", "revision": 1, "exp": "soon"},
        {"username": "x", "revision": 1, "nbf": NOW + 60},
    ):
        forged = JwtTokens("HS256", secret, clock=Clock())
        token = forged.issue("x", 1, "", 0)  # the right key, then claims swapped below
        head, _, _ = token.split(".")
        body = base64.urlsafe_b64encode(json.dumps(claims).encode()).rstrip(b"=").decode()
        digest = hmac.new(secret, f"{head}.{body}".encode(), "sha256").digest()
        signature = base64.urlsafe_b64encode(digest).rstrip(b"=").decode()
        assert tokens.lookup(f"{head}.{body}.{signature}", 1) is None, claims
    # The same forging path with good claims is accepted: the refusals above are the claims'.
    body = base64.urlsafe_b64encode(b'{"username":"x","revision":4}').rstrip(b"=").decode()
    digest = hmac.new(secret, f"{head}.{body}".encode(), "sha256").digest()
    signature = base64.urlsafe_b64encode(digest).rstrip(b"=").decode()
    assert tokens.lookup(f"{head}.{body}.{signature}", 1) == AuthInfo("x", 4)


def test_tokens_are_stateless_across_providers(keys: dict[str, Path]) -> None:
    """Two members with the same key: a token from one is valid on the other at once."""
    spec = f"jwt,sign-method=ES256,priv-key={keys['p256.key']},pub-key={keys['p256.pub']}"
    member_a, member_b = _provider(spec), _provider(spec)
    assert member_b.lookup(member_a.issue("carol", 5, "", 0), 5) == AuthInfo("carol", 5)


# --- the auth store with JWTs -----------------------------------------------------------------


def _store_with_user(tokens: JwtTokens) -> AuthStore:
    store = AuthStore(None, tokens)
    store.user_add("root", b"hash")
    store.user_grant_role("root", "root")
    store.user_add("dave", b"hash")
    store.role_add("r")
    store.role_grant_permission("r", Permission(PermType.READ, b"/a/", b"/a0"))
    store.user_grant_role("dave", "r")
    store.auth_enable()
    return store


def test_store_issues_jwts_at_its_revision_and_refuses_them_once_stale(
    keys: dict[str, Path],
) -> None:
    store = _store_with_user(_provider(f"jwt,sign-method=RS256,priv-key={keys['rsa.key']}"))
    token = store.authenticate("dave", "unused-prefix", 17)
    _, claims = _segments(token)
    assert claims["revision"] == store.revision
    who = store.auth_info_from_token(token)
    assert who == AuthInfo("dave", store.revision)
    store.check_permitted(who, b"/a/x", b"", write=False)
    # Any user or role change moves the revision: the token's claim is now old (etcd's
    # ErrAuthOldRevision), and a fresh Authenticate gives a current one.
    store.role_add("unrelated")
    stale = store.auth_info_from_token(token)
    with pytest.raises(AuthOldRevisionError):
        store.check_permitted(stale, b"/a/x", b"", write=False)
    fresh = store.auth_info_from_token(store.authenticate("dave", "", 18))
    store.check_permitted(fresh, b"/a/x", b"", write=False)
    with pytest.raises(InvalidAuthTokenError):
        store.auth_info_from_token(token + "x")


def test_verify_only_store_refuses_to_authenticate(keys: dict[str, Path]) -> None:
    store = _store_with_user(_provider(f"jwt,sign-method=RS256,pub-key={keys['rsa.pub']}"))
    with pytest.raises(TokenSigningError):
        store.authenticate("dave", "", 1)
