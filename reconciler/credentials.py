"""Credential material and its lifecycle arithmetic: client ids, secrets, keyed hashes, rotation dates.

A client secret is 256 bits from the operating system's CSPRNG with the prefix ``scp_cs_`` so that
secret scanners (and ``rules.py``) recognise a leaked one. Webhook signing secrets follow the
Standard Webhooks form ``whsec_<base64>``. Only keyed hashes (HMAC-SHA-256) of client secrets are
ever stored; comparisons are constant-time.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta

from reconciler.vocabulary import CredentialState

__all__ = [
    "CLIENT_SECRET_PREFIX",
    "WEBHOOK_SECRET_PREFIX",
    "Credential",
    "active_credential",
    "client_id_for",
    "hashes_match",
    "keyed_hash",
    "new_client_secret",
    "new_webhook_secret",
    "partner_of_client",
]

CLIENT_SECRET_PREFIX = "scp_cs_"  # noqa: S105 - a prefix, not a secret
WEBHOOK_SECRET_PREFIX = "whsec_"  # noqa: S105 - a prefix, not a secret
SECRET_BYTES = 32  # 256 bits
WEBHOOK_SECRET_BYTES = 32


def client_id_for(partner: str) -> str:
    """Stable, non-secret, unique: the partner key with '.' (DNS labels have none) for '/'."""
    tenant, name = partner.split("/", 1)
    return f"{tenant}.{name}"


def partner_of_client(client_id: str) -> str:
    """The inverse of :func:`client_id_for`: ``tenant.partner`` -> ``tenant/partner``."""
    return client_id.replace(".", "/", 1)


def new_client_secret() -> str:
    return CLIENT_SECRET_PREFIX + base64.urlsafe_b64encode(secrets.token_bytes(SECRET_BYTES)).decode().rstrip("=")


def new_webhook_secret() -> str:
    return WEBHOOK_SECRET_PREFIX + base64.b64encode(secrets.token_bytes(WEBHOOK_SECRET_BYTES)).decode()


def keyed_hash(key: bytes, secret: str) -> str:
    """HMAC-SHA-256 of ``secret`` under ``key``, hex."""
    return hmac.new(key, secret.encode(), hashlib.sha256).hexdigest()


def hashes_match(expected_hex: str, presented_hex: str) -> bool:
    return hmac.compare_digest(expected_hex.encode(), presented_hex.encode())


@dataclass(frozen=True)
class Credential:
    """One generation of a partner's client secret, as the secret store knows it (never the secret)."""

    credential_id: str
    partner: str
    client_id: str
    generation: int
    issued_at: datetime
    state: CredentialState
    revoke_after: datetime | None = None
    revoked_at: datetime | None = None

    @property
    def live(self) -> bool:
        return self.state in (CredentialState.ACTIVE, CredentialState.PREVIOUS)

    def rotates_at(self, rotation_days: int) -> datetime:
        return self.issued_at + timedelta(days=rotation_days)

    def due_for_rotation(self, now: datetime, rotation_days: int) -> bool:
        return self.state == CredentialState.ACTIVE and now >= self.rotates_at(rotation_days)

    def overlap_over(self, now: datetime) -> bool:
        return self.state == CredentialState.PREVIOUS and self.revoke_after is not None and now >= self.revoke_after


def active_credential(credentials: Iterable[Credential]) -> Credential | None:
    """The partner's current credential among its generations; None when it has none (revoked, never issued)."""
    return next((credential for credential in credentials if credential.state == CredentialState.ACTIVE), None)
