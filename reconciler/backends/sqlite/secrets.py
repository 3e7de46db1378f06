"""The embedded secret store: keyed hashes and sealed pickups in SQLite, under a key file of mode 0600.

One 256-bit master key (``secrets.key``) is created with mode 0600 on first use. Two keys are
derived from it with HKDF: one for HMAC-SHA-256 of client secrets, one for AES-256-GCM sealing of
pickups and webhook signing secrets (which the dispatcher must be able to read back to sign).
"""

from __future__ import annotations

import json
import os
import secrets
from collections.abc import Collection, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from reconciler.backends.sqlite.database import Database, change_counter, prepare_folder, read_counter
from reconciler.credentials import Credential, client_id_for, hashes_match, keyed_hash
from reconciler.errors import IntegrityError, InvalidState, Stalled
from reconciler.stores.records import OutboxEvent, Pickup
from reconciler.vocabulary import CredentialState, Event

_SCHEMA = """
CREATE TABLE IF NOT EXISTS credentials (
    credential_id TEXT PRIMARY KEY, partner TEXT NOT NULL, client_id TEXT NOT NULL, generation INTEGER NOT NULL,
    hash TEXT NOT NULL, issued_at TEXT NOT NULL, state TEXT NOT NULL, revoke_after TEXT, revoked_at TEXT
);
CREATE INDEX IF NOT EXISTS credentials_by_partner ON credentials (partner);
CREATE INDEX IF NOT EXISTS credentials_by_client ON credentials (client_id);
CREATE TABLE IF NOT EXISTS webhook_secrets (
    partner TEXT NOT NULL, name TEXT NOT NULL, sealed BLOB NOT NULL, PRIMARY KEY (partner, name)
);
CREATE TABLE IF NOT EXISTS previous_webhook_secrets (
    partner TEXT NOT NULL, name TEXT NOT NULL, sealed BLOB NOT NULL, valid_until REAL NOT NULL,
    PRIMARY KEY (partner, name)
);
CREATE TABLE IF NOT EXISTS pickups (partner TEXT PRIMARY KEY, sealed BLOB, updated_at TEXT, delivered_at TEXT);
CREATE TABLE IF NOT EXISTS sealed_values (name TEXT PRIMARY KEY, sealed BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS outbox (
    id INTEGER PRIMARY KEY AUTOINCREMENT, partner TEXT NOT NULL, event TEXT NOT NULL, details TEXT NOT NULL,
    time TEXT NOT NULL
);
"""
_COLUMNS = "credential_id, partner, client_id, generation, issued_at, state, revoke_after, revoked_at"


class LocalSecretStore:
    def __init__(self, folder: Path) -> None:
        prepare_folder(folder)
        master = _master_key(folder / "secrets.key")
        self._hmac_key = _derive(master, b"partnerctl client-secret hmac")
        self._aead = AESGCM(_derive(master, b"partnerctl sealing"))
        self._db = Database(folder / "secrets.db", _SCHEMA + change_counter(("credentials", "webhook_secrets")))
        self._folder = folder

    def version(self) -> str | None:
        return f"{(self._folder / 'secrets.db').stat().st_ino}:{read_counter(self._db)}"

    def forget(self) -> None:
        pass  # nothing is remembered: every read is the file's

    # --- credentials ------------------------------------------------------------------------------

    def live_credentials(self) -> dict[str, list[Credential]]:
        found: dict[str, list[Credential]] = {}
        rows = self._db.execute(
            f"SELECT {_COLUMNS} FROM credentials WHERE state != 'revoked' ORDER BY partner, generation"
        )
        for row in rows:
            credential = _credential(row)
            found.setdefault(credential.partner, []).append(credential)
        return found

    def credentials(self, partner: str) -> list[Credential]:
        rows = self._db.execute(
            f"SELECT {_COLUMNS} FROM credentials WHERE partner = ? ORDER BY generation",
            (partner,),
        )
        return [_credential(row) for row in rows]

    def issue_credential(self, partner: str, client_id: str, secret: str, *, now: datetime, reason: str) -> Credential:
        with self._db.transaction():
            if self._db.execute(
                "SELECT 1 FROM credentials WHERE partner = ? AND state = 'active'", (partner,)
            ).fetchone():
                raise InvalidState(f"{partner} already has an active credential; rotate it instead")
            credential = self._insert(partner, client_id, secret, now)
            self._add_to_pickup(partner, client_id, now, client_secret=secret)
            self._event(partner, Event.CREDENTIAL_ISSUED, {**_public(credential), "reason": reason}, now)
        return credential

    def rotate_credential(self, partner: str, secret: str, *, now: datetime, overlap_until: datetime) -> Credential:
        with self._db.transaction():
            current = self._db.execute(
                f"SELECT {_COLUMNS} FROM credentials WHERE partner = ? AND state = 'active'",
                (partner,),
            ).fetchone()
            if current is None:
                raise InvalidState(f"{partner} has no active credential to rotate")
            old = _credential(current)
            # An older credential still in its overlap ends now: at most two are ever live.
            for (previous_id,) in self._db.execute(
                "SELECT credential_id FROM credentials WHERE partner = ? AND state = 'previous'", (partner,)
            ).fetchall():
                self._revoke(previous_id, partner, now, "superseded by a newer rotation")
            self._db.execute(
                "UPDATE credentials SET state = 'previous', revoke_after = ? WHERE credential_id = ?",
                (overlap_until.isoformat(), old.credential_id),
            )
            credential = self._insert(partner, old.client_id, secret, now)
            self._add_to_pickup(partner, old.client_id, now, client_secret=secret)
            self._event(
                partner,
                Event.CREDENTIAL_ROTATED,
                {**_public(credential), "previous": old.credential_id, "previousValidUntil": overlap_until.isoformat()},
                now,
            )
        return credential

    def revoke_credential(self, credential_id: str, *, now: datetime, reason: str) -> None:
        with self._db.transaction():
            row = self._db.execute(
                "SELECT partner, state FROM credentials WHERE credential_id = ?", (credential_id,)
            ).fetchone()
            if row is None or row[1] == "revoked":
                return
            self._revoke(credential_id, row[0], now, reason)

    def verify(self, client_id: str, secret: str) -> Credential | None:
        presented = keyed_hash(self._hmac_key, secret)
        match = None
        rows = self._db.execute(
            f"SELECT {_COLUMNS}, hash FROM credentials WHERE client_id = ? AND state != 'revoked'",
            (client_id,),
        ).fetchall()
        for row in rows:  # compare against every live generation: no early exit on a match
            if hashes_match(row[-1], presented):
                match = _credential(row[:-1])
        return match

    # --- webhook secrets --------------------------------------------------------------------------

    def put_webhook_secret(self, partner: str, webhook: str, secret: str, *, now: datetime) -> None:
        with self._db.transaction():
            self._keep_webhook_secret(partner, webhook, secret, now)

    def rotate_webhook_secret(
        self, partner: str, webhook: str, secret: str, *, now: datetime, overlap_until: datetime
    ) -> None:
        with self._db.transaction():
            current = self.webhook_secret(partner, webhook)
            if current is None:
                raise InvalidState(f"webhook {webhook} of {partner} has no signing secret to rotate")
            # REPLACE: a previous secret still in its overlap is destroyed now, so at most two ever sign.
            self._db.execute(
                "INSERT OR REPLACE INTO previous_webhook_secrets (partner, name, sealed, valid_until) "
                "VALUES (?, ?, ?, ?)",
                (partner, webhook, self._seal(current.encode(), f"previous-webhook:{partner}:{webhook}"),
                 overlap_until.timestamp()),
            )  # fmt: skip
            self._keep_webhook_secret(partner, webhook, secret, now)
            details = {"webhook": webhook, "overlapUntil": overlap_until.isoformat()}
            self._event(partner, Event.WEBHOOK_SECRET_ROTATED, details, now)

    def webhook_secret(self, partner: str, webhook: str) -> str | None:
        row = self._db.execute(
            "SELECT sealed FROM webhook_secrets WHERE partner = ? AND name = ?", (partner, webhook)
        ).fetchone()
        return self._unseal(row[0], f"webhook:{partner}:{webhook}").decode() if row else None

    def webhook_signing_secrets(self, partner: str, webhook: str, *, now: datetime) -> list[str]:
        row = self._db.execute(
            "SELECT current.sealed, previous.sealed FROM webhook_secrets AS current "
            "LEFT JOIN previous_webhook_secrets AS previous ON previous.partner = current.partner "
            "AND previous.name = current.name AND previous.valid_until > ? "
            "WHERE current.partner = ? AND current.name = ?",
            (now.timestamp(), partner, webhook),
        ).fetchone()
        if row is None:
            return []
        found = [self._unseal(row[0], f"webhook:{partner}:{webhook}").decode()]
        if row[1] is not None:
            found.append(self._unseal(row[1], f"previous-webhook:{partner}:{webhook}").decode())
        return found

    def expire_webhook_secrets(self, now: datetime) -> int:
        with self._db.transaction():
            deleted = self._db.execute(
                "DELETE FROM previous_webhook_secrets WHERE valid_until <= ?", (now.timestamp(),)
            ).rowcount
        return int(deleted)

    def webhook_secret_names(self, partners: Collection[str] | None = None) -> dict[str, set[str]]:
        found: dict[str, set[str]] = {}
        if partners is None:
            rows = self._db.execute("SELECT partner, name FROM webhook_secrets").fetchall()
        else:
            wanted, rows = sorted(set(partners)), []
            for start in range(0, len(wanted), 500):
                chunk = wanted[start : start + 500]
                marks = ",".join("?" * len(chunk))
                rows += self._db.execute(f"SELECT partner, name FROM webhook_secrets WHERE partner IN ({marks})",
                                         chunk).fetchall()  # fmt: skip
        for partner, name in rows:
            found.setdefault(partner, set()).add(name)
        return found

    def remove_webhook_secret(self, partner: str, webhook: str) -> None:
        with self._db.transaction():
            for table in ("webhook_secrets", "previous_webhook_secrets"):
                self._db.execute(f"DELETE FROM {table} WHERE partner = ? AND name = ?", (partner, webhook))

    # --- the installation's own secrets -------------------------------------------------------------

    def sealed(self, name: str) -> bytes | None:
        row = self._db.execute("SELECT sealed FROM sealed_values WHERE name = ?", (name,)).fetchone()
        return self._unseal(row[0], f"value:{name}") if row else None

    def put_sealed(self, name: str, value: bytes) -> None:
        with self._db.transaction():
            # INSERT OR IGNORE: when two processes create the value at once, the first one wins.
            self._db.execute(
                "INSERT OR IGNORE INTO sealed_values (name, sealed) VALUES (?, ?)",
                (name, self._seal(value, f"value:{name}")),
            )

    def replace_sealed(self, name: str, value: bytes) -> None:
        with self._db.transaction():
            self._db.execute(
                "INSERT OR REPLACE INTO sealed_values (name, sealed) VALUES (?, ?)",
                (name, self._seal(value, f"value:{name}")),
            )

    # --- pickups ----------------------------------------------------------------------------------

    def pending_pickups(self) -> set[str]:
        return {row[0] for row in self._db.execute("SELECT partner FROM pickups WHERE sealed IS NOT NULL")}

    def take_pickup(self, partner: str, *, now: datetime, token_endpoint: str = "") -> Pickup | None:
        with self._db.transaction():
            row = self._db.execute(
                "SELECT sealed FROM pickups WHERE partner = ? AND sealed IS NOT NULL", (partner,)
            ).fetchone()
            if row is None:
                self._event(
                    partner, Event.CREDENTIAL_DELIVERY_REFUSED, {"reason": "nothing to pick up", "code": "SEC-01"}, now
                )
                return None
            payload = json.loads(self._unseal(row[0], f"pickup:{partner}"))
            self._db.execute(
                "UPDATE pickups SET sealed = NULL, delivered_at = ? WHERE partner = ?", (now.isoformat(), partner)
            )
            self._event(
                partner,
                Event.CREDENTIAL_DELIVERED,
                {"clientId": payload["client_id"], "webhooks": sorted(payload["webhook_secrets"])},
                now,
            )
        return Pickup(partner, payload["client_id"], payload.get("client_secret"), payload["webhook_secrets"])

    # --- outbox -----------------------------------------------------------------------------------

    def events_after(self, cursor: int) -> list[OutboxEvent]:
        rows = self._db.execute(
            "SELECT id, partner, event, details, time FROM outbox WHERE id > ? ORDER BY id", (cursor,)
        )
        return [OutboxEvent(row[0], row[1], row[2], json.loads(row[3]), row[4]) for row in rows]

    def close(self) -> None:
        self._db.close()

    # --- migration out of this store (partnerctl secrets migrate) -----------------------------------

    def hashing_key(self) -> bytes:
        """The HMAC key of client-secret hashes, to import into Vault Transit so no secret is re-issued."""
        return self._hmac_key

    def export(self) -> Iterator[ExportedPartner]:
        """Every partner's credentials (with their keyed hashes), webhook secrets (and the previous ones of
        rotations, with the end of their overlap) and pending pickup, in clear."""
        union = " UNION ".join(f"SELECT partner FROM {t}" for t in ("credentials", "webhook_secrets", "pickups"))
        partners = {row[0] for row in self._db.execute(union)}
        for partner in sorted(partners):
            rows = self._db.execute(
                f"SELECT {_COLUMNS}, hash FROM credentials WHERE partner = ? ORDER BY generation", (partner,)
            ).fetchall()
            delivered = self._db.execute("SELECT delivered_at FROM pickups WHERE partner = ?", (partner,)).fetchone()
            yield ExportedPartner(
                partner=partner,
                credentials=[(_credential(row[:-1]), row[-1]) for row in rows],
                webhook_secrets={
                    name: self.webhook_secret(partner, name) or ""
                    for name in self.webhook_secret_names().get(partner, set())
                },
                previous_webhook_secrets=self._previous_webhook_secrets(partner),
                pickup=self._pending_payload(partner),
                delivered_at=delivered[0] if delivered else None,
            )

    def _previous_webhook_secrets(self, partner: str) -> dict[str, tuple[str, datetime]]:
        rows = self._db.execute(
            "SELECT name, sealed, valid_until FROM previous_webhook_secrets WHERE partner = ?", (partner,)
        ).fetchall()
        return {
            name: (self._unseal(sealed, f"previous-webhook:{partner}:{name}").decode(),
                   datetime.fromtimestamp(valid_until, UTC))
            for name, sealed, valid_until in rows
        }  # fmt: skip

    def sealed_names(self) -> list[str]:
        return [row[0] for row in self._db.execute("SELECT name FROM sealed_values ORDER BY name")]

    def last_event_id(self) -> int:
        return int(self._db.execute("SELECT COALESCE(MAX(id), 0) FROM outbox").fetchone()[0])

    # --- inside a transaction ---------------------------------------------------------------------

    def _keep_webhook_secret(self, partner: str, webhook: str, secret: str, now: datetime) -> None:
        self._db.execute(
            "INSERT OR REPLACE INTO webhook_secrets (partner, name, sealed) VALUES (?, ?, ?)",
            (partner, webhook, self._seal(secret.encode(), f"webhook:{partner}:{webhook}")),
        )
        self._add_to_pickup(partner, client_id_for(partner), now, webhook_secrets={webhook: secret})

    def _insert(self, partner: str, client_id: str, secret: str, now: datetime) -> Credential:
        (generation,) = self._db.execute(
            "SELECT COALESCE(MAX(generation), 0) + 1 FROM credentials WHERE partner = ?", (partner,)
        ).fetchone()
        credential = Credential(
            credential_id=f"{client_id}#{generation}",
            partner=partner,
            client_id=client_id,
            generation=generation,
            issued_at=now,
            state=CredentialState.ACTIVE,
        )
        self._db.execute(
            "INSERT INTO credentials (credential_id, partner, client_id, generation, hash, issued_at, state) "
            "VALUES (?, ?, ?, ?, ?, ?, 'active')",
            (credential.credential_id, partner, client_id, generation, keyed_hash(self._hmac_key, secret),
             now.isoformat()),
        )  # fmt: skip
        return credential

    def _revoke(self, credential_id: str, partner: str, now: datetime, reason: str) -> None:
        was_active = (
            self._db.execute("SELECT state FROM credentials WHERE credential_id = ?", (credential_id,)).fetchone()[0]
            == CredentialState.ACTIVE
        )
        self._db.execute(
            "UPDATE credentials SET state = 'revoked', revoked_at = ? WHERE credential_id = ?",
            (now.isoformat(), credential_id),
        )
        if was_active:  # a revoked secret must not be handed out later
            self._drop_client_secret_from_pickup(partner)
        self._event(partner, Event.CREDENTIAL_REVOKED, {"credentialId": credential_id, "reason": reason}, now)

    def _add_to_pickup(
        self,
        partner: str,
        client_id: str,
        now: datetime,
        *,
        client_secret: str | None = None,
        webhook_secrets: dict[str, str] | None = None,
    ) -> None:
        payload = self._pending_payload(partner) or {"client_id": client_id, "webhook_secrets": {}}
        if client_secret is not None:
            payload["client_secret"] = client_secret
        payload["webhook_secrets"].update(webhook_secrets or {})
        self._db.execute(
            "INSERT OR REPLACE INTO pickups (partner, sealed, updated_at, delivered_at) VALUES (?, ?, ?, NULL)",
            (partner, self._seal(json.dumps(payload).encode(), f"pickup:{partner}"), now.isoformat()),
        )

    def _drop_client_secret_from_pickup(self, partner: str) -> None:
        payload = self._pending_payload(partner)
        if payload is None or "client_secret" not in payload:
            return
        del payload["client_secret"]
        self._db.execute(
            "UPDATE pickups SET sealed = ? WHERE partner = ?",
            (self._seal(json.dumps(payload).encode(), f"pickup:{partner}"), partner),
        )

    def _pending_payload(self, partner: str) -> dict[str, Any] | None:
        row = self._db.execute(
            "SELECT sealed FROM pickups WHERE partner = ? AND sealed IS NOT NULL", (partner,)
        ).fetchone()
        return json.loads(self._unseal(row[0], f"pickup:{partner}")) if row else None

    def _event(self, partner: str, event: Event, details: dict[str, Any], now: datetime) -> None:
        self._db.execute(
            "INSERT INTO outbox (partner, event, details, time) VALUES (?, ?, ?, ?)",
            (partner, str(event), json.dumps(details, sort_keys=True), now.isoformat()),
        )

    def _seal(self, plaintext: bytes, purpose: str) -> bytes:
        nonce = secrets.token_bytes(12)
        return nonce + self._aead.encrypt(nonce, plaintext, purpose.encode())

    def _unseal(self, sealed: bytes, purpose: str) -> bytes:
        try:
            return self._aead.decrypt(sealed[:12], sealed[12:], purpose.encode())
        except InvalidTag as error:
            raise IntegrityError(
                f"a sealed value in the local secret store ({purpose.split(':', 1)[0]}) does not open: it was altered "
                "or moved outside partnerctl; rotate the credentials it belongs to"
            ) from error


@dataclass(frozen=True)
class ExportedPartner:
    partner: str
    credentials: list[tuple[Credential, str]]  # each generation with its keyed hash (hex)
    webhook_secrets: dict[str, str]
    previous_webhook_secrets: dict[str, tuple[str, datetime]]  # of a rotation: the secret, the end of its overlap
    pickup: dict[str, Any] | None  # not yet delivered: client_id, client_secret?, webhook_secrets
    delivered_at: str | None


def _master_key(path: Path) -> bytes:
    try:
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return _existing_key(path)
    except OSError as error:
        raise Stalled(f"cannot create the secret-store key {path}: {error.strerror}") from error
    key = secrets.token_bytes(32)
    with os.fdopen(descriptor, "wb") as handle:
        handle.write(key)
        handle.flush()
        os.fsync(handle.fileno())
    return key


def _existing_key(path: Path) -> bytes:
    try:
        key = path.read_bytes()
    except OSError as error:
        raise Stalled(f"cannot read the secret-store key {path}: {error.strerror}") from error
    if len(key) != 32:
        raise IntegrityError(f"{path} is not a partnerctl secret-store key (expected 32 bytes)")
    return key


def _derive(master: bytes, purpose: bytes) -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=purpose).derive(master)


def _credential(row: Any) -> Credential:
    credential_id, partner, client_id, generation, issued_at, state, revoke_after, revoked_at = row
    return Credential(
        credential_id=credential_id,
        partner=partner,
        client_id=client_id,
        generation=generation,
        issued_at=datetime.fromisoformat(issued_at),
        state=CredentialState(state),
        revoke_after=datetime.fromisoformat(revoke_after) if revoke_after else None,
        revoked_at=datetime.fromisoformat(revoked_at) if revoked_at else None,
    )


def _public(credential: Credential) -> dict[str, Any]:
    return {
        "credentialId": credential.credential_id,
        "clientId": credential.client_id,
        "generation": credential.generation,
    }
