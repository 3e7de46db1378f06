"""Key pairs and their public JWKs (RFC 7517), for private_key_jwt manifests and assertions in tests."""

from __future__ import annotations

import base64
from functools import cache
from typing import Any

from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa, x25519
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

PrivateKey = rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey | ed25519.Ed25519PrivateKey
_CURVES: dict[str, tuple[ec.EllipticCurve, int]] = {
    "P-256": (ec.SECP256R1(), 32),
    "P-384": (ec.SECP384R1(), 48),
    "P-521": (ec.SECP521R1(), 66),
}


def b64url(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def b64url_int(value: int, size: int | None = None) -> str:
    return b64url(value.to_bytes(size or (value.bit_length() + 7) // 8, "big"))


@cache
def ec_key(crv: str = "P-256", index: int = 0) -> ec.EllipticCurvePrivateKey:
    """A fixed key pair per (curve, index) for the whole test run."""
    return ec.generate_private_key(_CURVES[crv][0])


@cache
def rsa_key(bits: int = 2048, index: int = 0) -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=bits)


@cache
def ed25519_key(index: int = 0) -> ed25519.Ed25519PrivateKey:
    return ed25519.Ed25519PrivateKey.generate()


def ec_jwk(crv: str = "P-256", *, kid: str | None = "ec-1", index: int = 0, private: bool = False) -> dict[str, Any]:
    key = ec_key(crv, index)
    numbers = key.public_key().public_numbers()
    size = _CURVES[crv][1]
    jwk: dict[str, Any] = {
        "kty": "EC",
        "crv": crv,
        "x": b64url_int(numbers.x, size),
        "y": b64url_int(numbers.y, size),
    }
    if private:
        jwk["d"] = b64url_int(key.private_numbers().private_value, size)
    return _with_kid(jwk, kid)


def rsa_jwk(bits: int = 2048, *, kid: str | None = "rsa-1", index: int = 0, private: bool = False) -> dict[str, Any]:
    key = rsa_key(bits, index)
    numbers = key.public_key().public_numbers()
    jwk: dict[str, Any] = {"kty": "RSA", "n": b64url_int(numbers.n), "e": b64url_int(numbers.e)}
    if private:
        secret = key.private_numbers()
        jwk |= {"d": b64url_int(secret.d), "p": b64url_int(secret.p), "q": b64url_int(secret.q)}
    return _with_kid(jwk, kid)


def ed25519_jwk(*, kid: str | None = "ed-1", index: int = 0) -> dict[str, Any]:
    raw = ed25519_key(index).public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
    return _with_kid({"kty": "OKP", "crv": "Ed25519", "x": b64url(raw)}, kid)


def x25519_jwk(*, kid: str | None = "x-1") -> dict[str, Any]:
    """A key-agreement key: the right shape, but it cannot sign."""
    raw = x25519.X25519PrivateKey.generate().public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
    return _with_kid({"kty": "OKP", "crv": "X25519", "x": b64url(raw)}, kid)


def _with_kid(jwk: dict[str, Any], kid: str | None) -> dict[str, Any]:
    return jwk if kid is None else {**jwk, "kid": kid}
