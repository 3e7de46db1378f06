"""Access tokens: RFC 9068 JWTs signed with the gateway's ES256 key, kept sealed in the secret store."""

from __future__ import annotations

import base64
import hashlib
import json
import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from reconciler.stores.secrets import SecretStore

SIGNING_KEY_NAME = "gateway-token-signing-key"
AUDIENCE = "scp-platform-api"
LIFETIME_SECONDS = 300


class TokenError(Exception):
    """The token is missing, malformed, tampered with, expired or not for us."""


@dataclass(frozen=True)
class AccessToken:
    client_id: str
    partner: str
    scopes: tuple[str, ...]
    generation: int
    expires_at: int
    issued_at: int
    jti: str  # what a revocation names (RFC 7009)


class TokenAuthority:
    def __init__(self, secrets: SecretStore, *, issuer: str, lifetime: int = LIFETIME_SECONDS) -> None:
        pem = secrets.sealed(SIGNING_KEY_NAME)
        if pem is None:
            key = ec.generate_private_key(ec.SECP256R1())
            secrets.put_sealed(
                SIGNING_KEY_NAME,
                key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                  serialization.NoEncryption()),
            )  # fmt: skip
            pem = secrets.sealed(SIGNING_KEY_NAME)  # another process may have won the race
            assert pem is not None
        private = serialization.load_pem_private_key(pem, password=None)
        assert isinstance(private, ec.EllipticCurvePrivateKey)
        self._private = private
        self._public = private.public_key()
        self._jwk: dict[str, Any] = json.loads(jwt.algorithms.ECAlgorithm.to_jwk(self._public))
        self.kid = _thumbprint(self._jwk)
        self.issuer = issuer
        self.lifetime = lifetime

    def issue(self, *, client_id: str, partner: str, scopes: list[str], generation: int, now: datetime) -> str:
        issued = int(now.timestamp())
        claims = {
            "iss": self.issuer,
            "sub": client_id,
            "aud": AUDIENCE,
            "iat": issued,
            "exp": issued + self.lifetime,
            "jti": uuid.uuid4().hex,
            "client_id": client_id,
            "scope": " ".join(scopes),
            "partner": partner,
            "gen": generation,  # which credential generation: a rotated-out one stops working at once
        }
        return jwt.encode(claims, self._private, algorithm="ES256", headers={"typ": "at+jwt", "kid": self.kid})

    def verify(self, token: str, *, now: datetime) -> AccessToken:
        try:
            header = jwt.get_unverified_header(token)
            if header.get("typ") != "at+jwt" or header.get("alg") != "ES256":
                raise TokenError("not an access token")
            # Times are checked below against partnerctl's clock (PARTNERCTL_NOW in drills).
            claims = jwt.decode(
                token, self._public, algorithms=["ES256"], audience=AUDIENCE, issuer=self.issuer,
                options={"verify_exp": False, "verify_iat": False, "verify_nbf": False,
                         "require": ["exp", "iat", "sub", "client_id", "scope", "jti"]},
            )  # fmt: skip
        except jwt.PyJWTError as error:
            raise TokenError(type(error).__name__) from error
        if int(claims["exp"]) <= now.timestamp():
            raise TokenError("expired")
        return AccessToken(
            client_id=str(claims["client_id"]),
            partner=str(claims.get("partner", "")),
            scopes=tuple(str(claims["scope"]).split()),
            generation=int(claims.get("gen", 0)),
            expires_at=int(claims["exp"]),
            issued_at=int(claims["iat"]),
            jti=str(claims["jti"]),
        )

    def jwks(self) -> dict[str, Any]:
        return {"keys": [{**self._jwk, "kid": self.kid, "use": "sig", "alg": "ES256"}]}


def _thumbprint(jwk: dict[str, Any]) -> str:
    """RFC 7638 JWK thumbprint, the key id."""
    canonical = json.dumps({name: jwk[name] for name in ("crv", "kty", "x", "y")}, separators=(",", ":"))
    return base64.urlsafe_b64encode(hashlib.sha256(canonical.encode()).digest()).decode().rstrip("=")
