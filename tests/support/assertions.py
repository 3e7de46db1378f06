"""A partner's side of private_key_jwt, written with independent libraries: key pairs whose private half
signs client assertions with joserfc or PyJWT, and whose public half (a JWK) goes in the manifest
(JWKs of every shape, for manifest validation, are in ``tests/support/jwks.py``)."""

from __future__ import annotations

import base64
import json
import uuid
import warnings
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import jwt as pyjwt
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from joserfc import jwt as josejwt
from joserfc.jwk import ECKey, OKPKey, RSAKey

CLIENT = "ministry-social-affairs.acme-bank"
TOKEN_ENDPOINT = "https://gateway.scp.example/oauth2/token"
ISSUER = "https://gateway.scp.example"
AUDIENCES = frozenset({TOKEN_ENDPOINT, ISSUER})
NOW = datetime(2026, 11, 28, 12, tzinfo=UTC)
T = int(NOW.timestamp())


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


@dataclass
class PartnerKey:
    """A partner's key pair: the private part signs (with joserfc or PyJWT), the public JWK goes in the manifest."""

    kid: str
    alg: str
    jose: RSAKey | ECKey | OKPKey  # joserfc's view of the key, private
    private: Any  # the same key as a cryptography object, for PyJWT

    @property
    def jwk(self) -> dict[str, Any]:
        return {**self.jose.as_dict(private=False), "kid": self.kid}

    def sign(self, claims: dict[str, Any], *, signer: str = "joserfc", header: dict[str, Any] | None = None) -> str:
        protected = {"alg": self.alg, "kid": self.kid, **(header or {})}
        protected = {name: value for name, value in protected.items() if value is not None}
        if signer == "joserfc":
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # joserfc calls EdDSA deprecated (RFC 9864); DESIGN §7 names it
                return josejwt.encode(protected, claims, self.jose, algorithms=[self.alg])
        extra = {name: value for name, value in protected.items() if name != "alg"}
        return pyjwt.encode(claims, self.private, algorithm=self.alg, headers=extra)


def make_key(kind: str, kid: str | None = None) -> PartnerKey:
    """RS256/PS256 on RSA-2048, ES256 on P-256, ES384 on P-384, EdDSA on Ed25519."""
    kid = kid or f"{kind.lower()}-{uuid.uuid4().hex[:6]}"
    private: Any
    if kind in ("RS256", "PS256"):
        private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        jose: Any = RSAKey.import_key(private)
    elif kind in ("ES256", "ES384"):
        private = ec.generate_private_key(ec.SECP256R1() if kind == "ES256" else ec.SECP384R1())
        jose = ECKey.import_key(private)
    else:
        private = ed25519.Ed25519PrivateKey.generate()
        jose = OKPKey.import_key(private)
    return PartnerKey(kid, kind, jose, private)


KINDS = ["RS256", "PS256", "ES256", "ES384", "EdDSA"]
KEYS = {kind: make_key(kind, kid=f"{kind.lower()}-1") for kind in KINDS}


def claims(**changes: Any) -> dict[str, Any]:
    base = {"iss": CLIENT, "sub": CLIENT, "aud": TOKEN_ENDPOINT, "iat": T, "exp": T + 120, "jti": uuid.uuid4().hex}
    base.update(changes)
    return {name: value for name, value in base.items() if value is not None}


@dataclass
class ReplayMemory:
    """The state store's remember-once, in memory: what the gateway's seen_before asks."""

    remembered: dict[str, float] = field(default_factory=dict)
    asked: int = 0

    def __call__(self, key: str, expires_at: float) -> bool:
        self.asked += 1
        if key in self.remembered:
            return True
        self.remembered[key] = expires_at
        return False


def jwks_of(*keys: PartnerKey) -> dict[str, Any]:
    """The public JWK Set of ``keys``, as a manifest's ``jwks`` or a ``jwksUri`` holds it."""
    return {"keys": [key.jwk for key in keys]}


SECRET_AUTH = "  auth:\n    method: oauth2-client-credentials\n"


def with_keys(*keys: PartnerKey, manifest: str | None = None) -> str:
    """ACME's manifest (or ``manifest``) with private_key_jwt and ``keys`` inline (JSON is YAML)."""
    from tests.support.repo import PARTNER, edit

    listed = "".join(f"        - {json.dumps(key.jwk)}\n" for key in keys)
    auth = f"{SECRET_AUTH}    clientAuthentication: private_key_jwt\n    jwks:\n      keys:\n{listed}"
    return edit(manifest or PARTNER, SECRET_AUTH, auth)


def with_jwks_uri(url: str, manifest: str | None = None) -> str:
    from tests.support.repo import PARTNER, edit

    auth = f"{SECRET_AUTH}    clientAuthentication: private_key_jwt\n    jwksUri: {url}\n"
    return edit(manifest or PARTNER, SECRET_AUTH, auth)
