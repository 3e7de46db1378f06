"""A partner's KV record in Vault, as plain data: generations, the credentials they describe, events, seals.

A record is ``{"client_id", "generations": [...], "webhooks": {name: ciphertext}, "previous_webhooks": {name:
{"secret": ciphertext, "until"}}, "pickup": ciphertext, "delivered_at", "intent", "seal"}``; the seal is a Transit
HMAC over :func:`canonical` of the rest. ``previous_webhooks`` (secrets replaced by a rotation, still signing until
their overlap ends) is absent from records written before rotations existed.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from reconciler.credentials import Credential
from reconciler.vocabulary import CredentialState, Event

__all__ = ["Record", "active", "canonical", "credential", "credentials", "event", "public"]

Record = dict[str, Any]


def canonical(record: Record) -> bytes:
    """The bytes a record's seal covers: everything but the seal, in canonical JSON."""
    return json.dumps({k: v for k, v in record.items() if k != "seal"}, sort_keys=True, separators=(",", ":")).encode()


def active(record: Record) -> Record | None:
    """The active generation, if any."""
    return next((g for g in record.get("generations", []) if g["state"] == CredentialState.ACTIVE), None)


def credentials(partner: str, record: Record) -> list[Credential]:
    generations = sorted(record.get("generations", []), key=lambda g: g["generation"])
    return [credential(partner, record["client_id"], g) for g in generations]


def credential(partner: str, client_id: str, generation: Record) -> Credential:
    return Credential(
        credential_id=generation["id"],
        partner=partner,
        client_id=client_id,
        generation=generation["generation"],
        issued_at=datetime.fromisoformat(generation["issued_at"]),
        state=CredentialState(generation["state"]),
        revoke_after=datetime.fromisoformat(generation["revoke_after"]) if generation.get("revoke_after") else None,
        revoked_at=datetime.fromisoformat(generation["revoked_at"]) if generation.get("revoked_at") else None,
    )


def event(partner: str, name: Event, details: dict[str, Any], now: datetime) -> Record:
    """An audit event as the ``_outbox`` record keeps it."""
    return {"partner": partner, "event": str(name), "details": details, "time": now.isoformat()}


def public(credential: Credential) -> dict[str, Any]:
    """What an audit event may say about a credential."""
    return {"credentialId": credential.credential_id, "clientId": credential.client_id,
            "generation": credential.generation}  # fmt: skip
