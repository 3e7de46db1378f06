"""private_key_jwt client assertions (RFC 7523 §3; DESIGN §7), checked against a partner's public JWKS; no I/O.

The checks, in order (the first one failing refuses the assertion):

- at most 8 KB, a compact JWS whose header ``alg`` is RS256, PS256, ES256, ES384 or EdDSA (``none``,
  HMAC and everything else are refused before any key is looked at) and that names no ``crit`` extension;
- the key: the header's ``kid`` selects it; without a ``kid`` the set must hold exactly one usable key.
  A ``kid`` the set does not hold is :class:`UnknownKey`, so that a caller holding a ``jwksUri`` can
  fetch the set again (at most once a minute) and retry. Usable keys are public RSA ≥ 2048 bits,
  EC P-256 / P-384 or Ed25519 keys meant for signing (``use``/``key_ops``); the algorithm is pinned
  by the key: RS256 or PS256 for RSA, ES256 for P-256, ES384 for P-384, EdDSA for Ed25519, and only
  the key's own ``alg`` when it names one. An HS256 assertion "signed" with the public key never
  reaches a key: HMAC is not an algorithm any key allows;
- the signature (PyJWT, with exactly that one algorithm);
- ``iss`` = ``sub`` = the client id; ``aud`` (a string or a list) names the token endpoint URL or the issuer;
- ``exp`` present, not past and at most 5 minutes ahead; ``iat`` and ``nbf``, when present, not in the
  future; each with 60 s leeway for clocks that disagree;
- ``jti`` present (at most 256 characters) and never seen before within the assertion's lifetime:
  ``seen_before(key, expires_at)`` is asked last, only for an assertion that passed every other
  check, so nobody can fill the replay store with unsigned junk. The key is a hash of the client id
  and the ``jti`` (a ``jti`` is unique per issuer only).

Why PyJWT rather than joserfc: it is already a dependency (the gateway's RFC 9068 tokens), and its
``PyJWK`` turns a JWK into a key object; joserfc is a test dependency, the independent signer.
PyJWT's own time checks read the wall clock, so the times are checked here against ``now``
(``PARTNERCTL_NOW`` in drills) and PyJWT checks the signature only.

A refusal is :class:`AssertionRefused` with a ``reason`` for the log; the reason never repeats the
assertion or any claim value. The token endpoint answers every refusal with ``invalid_client``
(RFC 6749 §5.2).
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

import jwt
from cryptography.hazmat.primitives.asymmetric import rsa

from reconciler.manifests import jwk as jwk_rules

__all__ = [
    "ALGORITHMS",
    "ASSERTION_TYPE",
    "LEEWAY_SECONDS",
    "MAX_LIFETIME_SECONDS",
    "AssertionRefused",
    "InlineKeys",
    "KeySource",
    "KeysUnavailable",
    "SeenBefore",
    "UnknownKey",
    "VerifiedAssertion",
    "authenticate",
    "unverified_client_id",
    "verify_assertion",
]

ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
ALGORITHMS = tuple(jwk_rules.ALGORITHMS)  # RS256, PS256, ES256, ES384, EdDSA: what manifests accept, too
MAX_LIFETIME_SECONDS = 300  # exp at most this far ahead (plus the leeway)
LEEWAY_SECONDS = 60
MAX_ASSERTION_BYTES = 8192
MAX_JTI_LENGTH = 256
MIN_RSA_BITS = jwk_rules.MIN_RSA_BITS
PRIVATE_MEMBERS = frozenset(jwk_rules.PRIVATE_MEMBERS)

# What a key of each type and curve may sign with (RSA keys have no curve).
_ALLOWED: dict[tuple[str, str | None], tuple[str, ...]] = {
    key: tuple(name for name, needs in jwk_rules.ALGORITHMS.items() if needs == key)
    for key in jwk_rules.ALGORITHMS.values()
}

SeenBefore = Callable[[str, float], bool]
"""``seen_before(replay_key, expires_at)``: True when ``replay_key`` was already presented (a replay);
otherwise remember it until ``expires_at`` (seconds since the epoch) and answer False. Across replicas
this is the state store's ``remember_once(key, expires_at)`` negated."""


class AssertionRefused(Exception):
    """The client assertion does not authenticate the client; ``reason`` is for the log, never for the client."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class UnknownKey(AssertionRefused):
    """The header names a ``kid`` the partner's key set does not hold: fetch a ``jwksUri`` again and retry."""

    def __init__(self, kid: str) -> None:
        super().__init__(f"no key with kid {_printable(kid)} in the partner's key set")
        self.kid = kid


class KeysUnavailable(AssertionRefused):
    """No keys to check with: neither ``jwks`` nor ``jwksUri``, or a ``jwksUri`` failing with nothing cached."""


@dataclass(frozen=True)
class VerifiedAssertion:
    """An assertion that authenticated ``client_id``."""

    client_id: str
    key_id: str | None  # the header's kid; None when the set's only key was used without one
    algorithm: str
    jti: str
    expires_at: float
    issued_at: float | None


class KeySource(Protocol):
    """Where a partner's public keys come from: its manifest's ``jwks``, or its ``jwksUri`` (fetched, cached)."""

    def keys_for(self, auth: Mapping[str, Any], *, refresh: bool = False) -> dict[str, Any]:
        """The JWKS for a partner's applied ``spec["auth"]``; ``refresh`` after an unknown ``kid``.

        Raises :class:`KeysUnavailable` when there is none to be had."""


class InlineKeys:
    """A :class:`KeySource` for manifests' inline ``jwks`` only (no network): a ``jwksUri`` is unavailable."""

    def keys_for(self, auth: Mapping[str, Any], *, refresh: bool = False) -> dict[str, Any]:
        jwks = auth.get("jwks")
        if isinstance(jwks, Mapping):
            return dict(jwks)
        if auth.get("jwksUri"):
            raise KeysUnavailable("the partner's keys are at a jwksUri and this gateway fetches none")
        raise KeysUnavailable("the partner has neither jwks nor jwksUri")


def unverified_client_id(assertion: str) -> str:
    """The client id an assertion claims (``iss``, which must equal ``sub``), read WITHOUT checking anything.

    Only to find which partner's keys to check it with, when the request names no ``client_id``."""
    claims = _unverified_claims(assertion)
    issuer, subject = claims.get("iss"), claims.get("sub")
    if not isinstance(issuer, str) or not issuer or issuer != subject:
        raise AssertionRefused("iss and sub must both be the client id")
    return issuer


def verify_assertion(
    assertion: str,
    *,
    client_id: str,
    jwks: Mapping[str, Any],
    audiences: set[str] | frozenset[str],
    now: datetime,
    seen_before: SeenBefore,
) -> VerifiedAssertion:
    """Check ``assertion`` as the module docstring lists; the verified facts, or :class:`AssertionRefused`."""
    if len(assertion) > MAX_ASSERTION_BYTES:
        raise AssertionRefused(f"assertion longer than {MAX_ASSERTION_BYTES} bytes")
    header = _header(assertion)
    algorithm = header["alg"]
    kid = header.get("kid")
    key = _select_key(jwks, kid, algorithm)
    try:
        claims = jwt.decode(
            assertion, key, algorithms=[algorithm],
            options={"verify_signature": True, "verify_exp": False, "verify_nbf": False, "verify_iat": False,
                     "verify_aud": False, "verify_iss": False, "verify_sub": False, "verify_jti": False},
        )  # fmt: skip
    except jwt.InvalidSignatureError as error:
        raise AssertionRefused("signature does not verify") from error
    except jwt.PyJWTError as error:
        raise AssertionRefused(f"not a valid JWT ({type(error).__name__})") from error
    moment = now.timestamp()
    _check_parties(claims, client_id=client_id, audiences=audiences)
    expires_at, issued_at = _check_times(claims, moment)
    jti = claims.get("jti")
    if not isinstance(jti, str) or not jti:
        raise AssertionRefused("jti missing")
    if len(jti) > MAX_JTI_LENGTH:
        raise AssertionRefused(f"jti longer than {MAX_JTI_LENGTH} characters")
    # Remembered as long as the assertion could be accepted: until exp plus the leeway.
    if seen_before(replay_key(client_id, jti), expires_at + LEEWAY_SECONDS):
        raise AssertionRefused("jti already used (a replayed assertion)")
    return VerifiedAssertion(client_id, kid, algorithm, jti, expires_at, issued_at)


def authenticate(
    assertion: str,
    *,
    client_id: str,
    auth: Mapping[str, Any],
    keys: KeySource,
    audiences: set[str] | frozenset[str],
    now: datetime,
    seen_before: SeenBefore,
) -> VerifiedAssertion:
    """Verify with the partner's keys (``auth`` is its applied ``spec["auth"]``); on an unknown ``kid`` of a
    ``jwksUri``, once more with the set fetched again (the key source limits refetches to one a minute).

    Blocking when the source fetches: call it where the gateway calls its stores, off the event loop."""
    if auth.get("clientAuthentication") != "private_key_jwt":
        raise AssertionRefused("the client does not authenticate with private_key_jwt")

    def verify(jwks: Mapping[str, Any]) -> VerifiedAssertion:
        return verify_assertion(assertion, client_id=client_id, jwks=jwks, audiences=audiences, now=now,
                                seen_before=seen_before)  # fmt: skip

    try:
        return verify(keys.keys_for(auth))
    except UnknownKey:
        if not auth.get("jwksUri"):
            raise
    return verify(keys.keys_for(auth, refresh=True))


def replay_key(client_id: str, jti: str) -> str:
    """What the replay store remembers: fixed length, whatever the client put in its jti."""
    return "jti:" + hashlib.sha256(f"{client_id}\x00{jti}".encode()).hexdigest()


# --- the checks -------------------------------------------------------------------------------------


def _header(assertion: str) -> dict[str, Any]:
    try:
        header = jwt.get_unverified_header(assertion)
    except jwt.PyJWTError as error:
        raise AssertionRefused(f"not a compact JWS ({type(error).__name__})") from error
    algorithm = header.get("alg")
    if algorithm not in ALGORITHMS:
        shown = algorithm if isinstance(algorithm, str) and algorithm.isalnum() and len(algorithm) <= 16 else "?"
        raise AssertionRefused(f"algorithm {shown} not allowed (only {', '.join(ALGORITHMS)})")
    if "crit" in header:
        raise AssertionRefused("critical header extensions are not supported")
    kid = header.get("kid")
    if kid is not None and not isinstance(kid, str):
        raise AssertionRefused("kid must be a string")
    return header


def _select_key(jwks: Mapping[str, Any], kid: str | None, algorithm: str) -> Any:
    """The key object to verify with: the JWK ``kid`` names, usable with ``algorithm``."""
    keys = jwks.get("keys") if isinstance(jwks, Mapping) else None
    if not isinstance(keys, list):
        raise KeysUnavailable("the partner's key set has no keys list")
    if kid is None:
        usable = [jwk for jwk in keys if isinstance(jwk, Mapping) and _algorithms(jwk)]
        if len(usable) != 1:
            raise AssertionRefused("the header has no kid and the key set holds more than one key")
        chosen = usable[0]
    else:
        named = [jwk for jwk in keys if isinstance(jwk, Mapping) and jwk.get("kid") == kid]
        if not named:
            raise UnknownKey(kid)
        if len(named) > 1:
            raise AssertionRefused(f"more than one key with kid {_printable(kid)}")
        chosen = named[0]
    allowed = _algorithms(chosen)
    if algorithm not in allowed:
        raise AssertionRefused(
            f"algorithm {algorithm} does not fit the key ({', '.join(allowed) or 'no usable algorithm'})"
        )
    try:
        key = jwt.PyJWK(dict(chosen), algorithm=allowed[0]).key
    except (jwt.PyJWKError, ValueError, TypeError) as error:  # never the message: it would repeat the JWK
        raise AssertionRefused(f"the key is not a valid JWK ({type(error).__name__})") from error
    if isinstance(key, rsa.RSAPublicKey) and key.key_size < MIN_RSA_BITS:
        raise AssertionRefused(f"the RSA key has fewer than {MIN_RSA_BITS} bits")
    if not _public(key):
        raise AssertionRefused("the key set holds a private key")
    return key


def _algorithms(jwk: Mapping[str, Any]) -> tuple[str, ...]:
    """What ``jwk`` may verify: nothing for private, symmetric, unknown or non-signing keys."""
    if PRIVATE_MEMBERS & set(jwk):
        return ()
    kty, crv = jwk.get("kty"), jwk.get("crv")
    allowed = _ALLOWED.get((str(kty), None if kty == "RSA" else str(crv)), ())
    if jwk.get("use", "sig") != "sig":
        return ()
    operations = jwk.get("key_ops")
    if operations is not None and (not isinstance(operations, list) or "verify" not in operations):
        return ()
    named = jwk.get("alg")
    if named is not None:
        return (named,) if named in allowed else ()
    return allowed


def _public(key: Any) -> bool:
    return not hasattr(key, "private_bytes")


def _check_parties(claims: Mapping[str, Any], *, client_id: str, audiences: set[str] | frozenset[str]) -> None:
    if claims.get("iss") != client_id:
        raise AssertionRefused("iss is not the client id")
    if claims.get("sub") != client_id:
        raise AssertionRefused("sub is not the client id")
    audience = claims.get("aud")
    named = [audience] if isinstance(audience, str) else audience if isinstance(audience, list) else []
    if not any(isinstance(value, str) and value in audiences for value in named):
        raise AssertionRefused("aud names neither the token endpoint nor the issuer")


def _check_times(claims: Mapping[str, Any], now: float) -> tuple[float, float | None]:
    expires_at = _number(claims, "exp")
    if expires_at is None:
        raise AssertionRefused("exp missing")
    if expires_at < now - LEEWAY_SECONDS:
        raise AssertionRefused("expired")
    if expires_at > now + MAX_LIFETIME_SECONDS + LEEWAY_SECONDS:
        raise AssertionRefused(f"exp more than {MAX_LIFETIME_SECONDS // 60} minutes ahead")
    issued_at = _number(claims, "iat")
    if issued_at is not None and issued_at > now + LEEWAY_SECONDS:
        raise AssertionRefused("iat in the future")
    not_before = _number(claims, "nbf")
    if not_before is not None and not_before > now + LEEWAY_SECONDS:
        raise AssertionRefused("not valid yet (nbf)")
    return expires_at, issued_at


def _number(claims: Mapping[str, Any], name: str) -> float | None:
    value = claims.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise AssertionRefused(f"{name} is not a number of seconds")
    return float(value)


def _unverified_claims(assertion: str) -> dict[str, Any]:
    if len(assertion) > MAX_ASSERTION_BYTES:
        raise AssertionRefused(f"assertion longer than {MAX_ASSERTION_BYTES} bytes")
    try:
        claims = jwt.decode(assertion, options={"verify_signature": False})
    except jwt.PyJWTError as error:
        raise AssertionRefused(f"not a valid JWT ({type(error).__name__})") from error
    return dict(claims)


def _printable(value: str) -> str:
    """A client-chosen string made safe for one log line."""
    cleaned = "".join(character if character.isprintable() else "?" for character in value[:64])
    return repr(cleaned + ("…" if len(value) > 64 else ""))
