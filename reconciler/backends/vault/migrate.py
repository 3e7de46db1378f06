"""Moving an embedded installation's secrets into Vault without re-issuing a single credential.

A client secret is stored only as its keyed hash, so the hashes can move only with their key: the
local HMAC key is imported into Transit (bring-your-own-key import: RSA-OAEP wrapping of an
ephemeral AES key, AES key wrap with padding of the HMAC key) as a key of its own, after which it
never leaves Vault. Transit's HMAC under that key equals the local one, so every migrated hash is the
same bytes, re-encoded. Webhook secrets (with the previous one of a rotation still in its overlap),
pending pickups and the installation's own secrets are re-encrypted under the Transit key.
"""

from __future__ import annotations

import base64
import hashlib
import json
import secrets
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.hazmat.primitives.keywrap import aes_key_wrap_with_padding

from reconciler import clock
from reconciler.backends.sqlite.secrets import ExportedPartner, LocalSecretStore
from reconciler.backends.vault.store import VaultSecretStore
from reconciler.errors import InvalidState, Stalled


@dataclass(frozen=True)
class MigrationReport:
    partners: int
    credentials: int
    live_credentials: int
    webhook_secrets: int
    pending_pickups: int
    installation_secrets: int
    hashing_key: str  # the Transit key now holding the migrated hashes' key


def migrate(source: LocalSecretStore, target: VaultSecretStore) -> MigrationReport:
    """Copy everything in ``source`` into an empty ``target``; ``source`` is left as it was."""
    if not target.is_empty():
        raise InvalidState(
            f"the Vault prefix {target.config.prefix!r} already holds records; migrate into an empty prefix "
            "(…?prefix=NEW) so nothing there is overwritten"
        )
    key_name = import_hashing_key(target, source.hashing_key())
    exported = list(source.export())
    now = clock.now()
    for partner in exported:
        target.import_partner(partner.partner, _record(target, partner, key_name, now))
    names = source.sealed_names()
    for name in names:
        value = source.sealed(name)
        if value is not None:
            target.replace_sealed(name, value)
    target.start_outbox_at(source.last_event_id() + 1)  # the audit log's cursor counts on from the local ids
    return MigrationReport(
        partners=len(exported),
        credentials=sum(len(p.credentials) for p in exported),
        live_credentials=sum(1 for p in exported for credential, _ in p.credentials if credential.live),
        webhook_secrets=sum(len(p.webhook_secrets) for p in exported),
        pending_pickups=sum(1 for p in exported if p.pickup),
        installation_secrets=len(names),
        hashing_key=key_name,
    )


def import_hashing_key(target: VaultSecretStore, key: bytes) -> str:
    """Import the local HMAC key into Transit (once: the name carries the key's fingerprint)."""
    config = target.config
    name = f"{config.key}-migrated-{hashlib.sha256(b'partnerctl key fingerprint' + key).hexdigest()[:12]}"
    client = target.vault
    exists = client.call(
        "look for the migrated hashing key",
        lambda: client.hvac.secrets.transit.read_key(name, mount_point=config.transit),
        missing=lambda: None,
    )
    if exists:
        return name
    public = client.call(
        "read Transit's import wrapping key",
        lambda: client.hvac.adapter.get(f"/v1/{config.transit}/wrapping_key")["data"]["public_key"],
    )
    wrapping_key = serialization.load_pem_public_key(str(public).encode())
    if not isinstance(wrapping_key, rsa.RSAPublicKey):
        raise Stalled("Transit's wrapping key is not an RSA key; cannot import the hashing key")
    ephemeral = secrets.token_bytes(32)
    oaep = padding.OAEP(mgf=padding.MGF1(hashes.SHA256()), algorithm=hashes.SHA256(), label=None)
    wrapped = wrapping_key.encrypt(ephemeral, oaep) + aes_key_wrap_with_padding(ephemeral, key)
    body = {"ciphertext": base64.b64encode(wrapped).decode(), "type": "hmac", "hash_function": "SHA256"}
    client.call(
        "import the hashing key into Transit",
        lambda: client.hvac.adapter.post(f"/v1/{config.transit}/keys/{name}/import", json=body),
    )
    return name


def _record(target: VaultSecretStore, partner: ExportedPartner, key_name: str, now: datetime) -> dict[str, Any]:
    client_id = next((credential.client_id for credential, _ in partner.credentials), None)
    if client_id is None and partner.pickup:
        client_id = partner.pickup["client_id"]
    return {
        "client_id": client_id or partner.partner.replace("/", ".", 1),
        "generations": [
            {
                "id": credential.credential_id,
                "generation": credential.generation,
                "hash": "vault:v1:" + base64.b64encode(bytes.fromhex(digest)).decode(),
                "hash_key": key_name,
                "issued_at": credential.issued_at.isoformat(),
                "state": credential.state,
                "revoke_after": credential.revoke_after.isoformat() if credential.revoke_after else None,
                "revoked_at": credential.revoked_at.isoformat() if credential.revoked_at else None,
            }
            for credential, digest in partner.credentials
        ],
        "webhooks": {
            name: target.encrypt_for(secret, f"webhook:{partner.partner}:{name}")
            for name, secret in sorted(partner.webhook_secrets.items())
        },
        "previous_webhooks": {
            name: {
                "secret": target.encrypt_for(secret, f"previous-webhook:{partner.partner}:{name}"),
                "until": until.isoformat(),
            }
            for name, (secret, until) in sorted(partner.previous_webhook_secrets.items())
            if now < until  # one whose overlap has ended would only wait to be destroyed
        },
        "pickup": target.encrypt_for(json.dumps(partner.pickup), f"pickup:{partner.partner}")
        if partner.pickup
        else None,
        "delivered_at": partner.delivered_at,
    }
