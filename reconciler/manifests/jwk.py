"""Public JSON Web Keys (RFC 7517, 7518, 8037) for ``private_key_jwt``: strong types that actually load.

A manifest's ``spec.auth.jwks`` holds the keys a partner signs its client assertions with (DESIGN
§3, §7). Accepted: RSA of 2048 bits or more, EC on P-256 or P-384, and Ed25519 — with the algorithms
the gateway verifies (:data:`ALGORITHMS`). Private members never belong in git: see
:data:`PRIVATE_MEMBERS`. Nothing here reads the network; the gateway fetches ``jwksUri`` keys.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # cryptography is imported when a key is checked: `validate` of other files never pays for it
    from typing import TypeAlias

    from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

    PublicKey: TypeAlias = rsa.RSAPublicKey | ec.EllipticCurvePublicKey | ed25519.Ed25519PublicKey

# Members that carry private key material (RFC 7518 §6.2.2, §6.3.2, §6.4; RFC 8037 §2); "oth" holds
# the private parts of multi-prime RSA keys.
PRIVATE_MEMBERS = ("d", "p", "q", "dp", "dq", "qi", "oth", "k")

# The algorithms a client assertion may be signed with (DESIGN §7), and the key each needs: its
# type and, for EC and OKP keys, its curve.
ALGORITHMS: dict[str, tuple[str, str | None]] = {
    "RS256": ("RSA", None),
    "PS256": ("RSA", None),
    "ES256": ("EC", "P-256"),
    "ES384": ("EC", "P-384"),
    "EdDSA": ("OKP", "Ed25519"),
}
MIN_RSA_BITS = 2048
_CURVES: dict[str, tuple[str, int]] = {"P-256": ("SECP256R1", 32), "P-384": ("SECP384R1", 48)}
ED25519_KEY_BYTES = 32
ACCEPTED_KEYS = "RSA (2048 bits or more), EC P-256 or P-384, or OKP Ed25519"

# Unpadded base64url (RFC 7515 §2): groups of four characters, then an optional group of two or three.
BASE64URL_PATTERN = r"^(?:[A-Za-z0-9_-]{4})*(?:[A-Za-z0-9_-]{2,3})?$"
_BASE64URL = re.compile(BASE64URL_PATTERN.removesuffix("$") + r"\Z")



class KeyProblem(ValueError):
    """A JWK that is not an acceptable public signing key; ``member`` names the member at fault."""

    def __init__(self, member: str, message: str) -> None:
        super().__init__(message)
        self.member = member
        self.message = message


def private_members(jwk: Mapping[str, Any]) -> list[str]:
    """The private members present in ``jwk`` (their values are never looked at)."""
    return [member for member in PRIVATE_MEMBERS if member in jwk]


def base64url_bytes(value: str, *, member: str) -> bytes:
    """The bytes of an unpadded base64url ``value``; :class:`KeyProblem` when it is not well-formed."""
    if not value or not _BASE64URL.match(value):
        raise KeyProblem(member, f"{member} is not well-formed base64url (RFC 7515 §2, without padding)")
    try:
        return base64.urlsafe_b64decode(value + "=" * (-len(value) % 4))
    except (binascii.Error, ValueError) as error:  # pragma: no cover - the pattern admits only decodable text
        raise KeyProblem(member, f"{member} is not well-formed base64url") from error


def public_key(jwk: Mapping[str, Any]) -> PublicKey:
    """The public key ``jwk`` describes, when it is one the platform accepts; else :class:`KeyProblem`.

    Checks the type, size and curve, that ``alg`` (when given) is allowed and fits the key, that no
    private member is present, and that the key loads (an RSA modulus and exponent that make a key,
    a point on its curve)."""
    found = private_members(jwk)
    if found:
        raise KeyProblem(found[0], f"holds private key member {found[0]!r}; a JWK here must be public")
    kty = jwk.get("kty")
    if kty == "RSA":
        key: PublicKey = _rsa_key(jwk)
    elif kty == "EC":
        key = _ec_key(jwk)
    elif kty == "OKP":
        key = _ed25519_key(jwk)
    else:
        raise KeyProblem("kty", f"key type {kty!r} is not accepted; use {ACCEPTED_KEYS}")
    _check_algorithm(jwk)
    return key


def _text(jwk: Mapping[str, Any], member: str) -> str:
    value = jwk.get(member)
    if not isinstance(value, str):
        raise KeyProblem(member, f"a {jwk.get('kty')} key needs {member} (a base64url string)")
    return value


def _rsa_key(jwk: Mapping[str, Any]) -> rsa.RSAPublicKey:
    from cryptography.hazmat.primitives.asymmetric import rsa

    modulus = int.from_bytes(base64url_bytes(_text(jwk, "n"), member="n"), "big")
    exponent = int.from_bytes(base64url_bytes(_text(jwk, "e"), member="e"), "big")
    bits = modulus.bit_length()
    if bits < MIN_RSA_BITS:
        raise KeyProblem("n", f"RSA key of {bits} bits is too weak; use {MIN_RSA_BITS} bits or more")
    try:
        return rsa.RSAPublicNumbers(exponent, modulus).public_key()
    except ValueError as error:
        raise KeyProblem("e", f"n and e do not make an RSA public key ({error})") from error


def _ec_key(jwk: Mapping[str, Any]) -> ec.EllipticCurvePublicKey:
    from cryptography.hazmat.primitives.asymmetric import ec

    crv = jwk.get("crv")
    if not isinstance(crv, str) or crv not in _CURVES:
        raise KeyProblem("crv", f"EC curve {crv!r} is not accepted; use P-256 or P-384")
    curve_name, size = _CURVES[crv]
    curve = getattr(ec, curve_name)()
    coordinates = []
    for member in ("x", "y"):
        raw = base64url_bytes(_text(jwk, member), member=member)
        if len(raw) != size:
            raise KeyProblem(member, f"{member} must be {size} bytes for {crv} (RFC 7518 §6.2.1), not {len(raw)}")
        coordinates.append(int.from_bytes(raw, "big"))
    try:
        return ec.EllipticCurvePublicNumbers(coordinates[0], coordinates[1], curve).public_key()
    except ValueError as error:
        raise KeyProblem("x", f"x and y are not a point on {crv}; the key does not load") from error


def _ed25519_key(jwk: Mapping[str, Any]) -> ed25519.Ed25519PublicKey:
    from cryptography.hazmat.primitives.asymmetric import ed25519

    crv = jwk.get("crv")
    if crv != "Ed25519":
        raise KeyProblem("crv", f"OKP curve {crv!r} is not accepted; use Ed25519 (X25519 and X448 cannot sign)")
    raw = base64url_bytes(_text(jwk, "x"), member="x")
    if len(raw) != ED25519_KEY_BYTES:
        raise KeyProblem("x", f"x must be {ED25519_KEY_BYTES} bytes for Ed25519 (RFC 8037 §2), not {len(raw)}")
    try:
        return ed25519.Ed25519PublicKey.from_public_bytes(raw)
    except ValueError as error:  # pragma: no cover - any 32 bytes load
        raise KeyProblem("x", "x is not an Ed25519 public key") from error


def _check_algorithm(jwk: Mapping[str, Any]) -> None:
    alg = jwk.get("alg")
    if alg is None:
        return
    if alg not in ALGORITHMS:
        raise KeyProblem("alg", f"algorithm {alg!r} is not accepted; use one of {', '.join(ALGORITHMS)}")
    kty, crv = ALGORITHMS[alg]
    if jwk.get("kty") != kty or (crv is not None and jwk.get("crv") != crv):
        needed = f"{kty} {crv}" if crv else kty
        raise KeyProblem("alg", f"algorithm {alg} needs an {needed} key, not this one")
