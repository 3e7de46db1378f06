"""The Vault (or OpenBao) secret store: records in KV v2, hashing and encryption by Transit, delivery by wrapping.

Layout under ``<mount>/<prefix>/`` in KV v2 (nothing there is readable but keyed hashes and metadata):

    <tenant>/<partner>/credentials   client id; generations with their Transit HMACs, times and states;
                                     webhook signing secrets (and the previous one of a rotation, until its
                                     overlap ends) and the pending pickup as Transit ciphertexts;
                                     a Transit HMAC "seal" over all of it, so a hand edit shows as drift
    _outbox                          credential events for the audit log (see below)
    _installation/<name>             the installation's own secrets (gateway signing key …), Transit ciphertexts
    _wraps/<sha256 of a wrap token>  which partner a delivered wrap token was for, to audit a failed unwrap

Every record is written with check-and-set on its KV version, so two reconcilers never overwrite each
other: the loser gets :class:`WriteConflict` and nothing of its change lands.

KV has no transaction across two paths, yet each change of a credential must leave exactly one audit
event. So the event is written first, into ``_outbox``, as an *intent* naming the record version the
change will create and a random intent id that the record will carry. The event counts only once the
record at that version carries that intent id: a change lost to a crash or a conflict leaves an intent
that is never confirmed, and a confirmed one is never lost.
"""

from __future__ import annotations

import base64
import contextlib
import copy
import hashlib
import hmac
import json
import secrets
import time
from collections.abc import Callable, Collection, Iterable
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from typing import Any, TypeVar

import hvac.exceptions
import requests

from reconciler import clock
from reconciler.backends.vault import records as kv
from reconciler.backends.vault.client import VaultClient
from reconciler.backends.vault.config import VaultConfig
from reconciler.backends.vault.records import Record
from reconciler.credentials import Credential, client_id_for, partner_of_client
from reconciler.errors import IntegrityError, InvalidState, ReconcilerError, Stalled, WriteConflict
from reconciler.stores.records import OutboxEvent, Pickup
from reconciler.vocabulary import CredentialState, Event

__all__ = ["VaultSecretStore"]

T = TypeVar("T")
OUTBOX_KEEP = 100  # audited events kept in _outbox before it is trimmed (fewer rewrites of a large record)
SCAN_THREADS = 8
SCAN_ABOVE = 50  # asked about more partners than this, one scan of every record beats reading each


class VaultSecretStore:
    """The :class:`~reconciler.secretstore.SecretStore` on Vault. ``cache_seconds`` (the gateway's) lets
    verifications and credential reads be answered from memory for that long."""

    def __init__(self, config: VaultConfig, *, cache_seconds: float = 0.0, client: VaultClient | None = None) -> None:
        self.config = config
        self.vault = client or VaultClient(config)
        self._kv = self.vault.hvac.secrets.kv.v2
        self._cache_seconds = cache_seconds
        self._cache: dict[str, tuple[float, Any]] = {}
        self._cache_key = secrets.token_bytes(32)  # keys the verification cache; never leaves this process
        self._confirmed: set[int] = set()
        self._outbox: tuple[Record, int] | None = None
        self._check_transit_key()

    def _check_transit_key(self) -> None:
        # Transit's encrypt would quietly create a missing key for a token allowed to: refuse instead.
        config = self.config

        def absent() -> None:
            raise Stalled(
                f"Vault at {config.address} has no Transit key {config.key!r}: create it with "
                f"`vault write -f {config.transit}/keys/{config.key}`"
            )

        self.vault.call(
            "read the Transit key's settings",
            lambda: self.vault.hvac.secrets.transit.read_key(config.key, mount_point=config.transit),
            missing=absent,
        )

    def version(self) -> str | None:
        return None  # KV has no counter that hand edits move: every plan reads Vault afresh

    def forget(self) -> None:
        self._cache.clear()

    # --- credentials ------------------------------------------------------------------------------

    def live_credentials(self) -> dict[str, list[Credential]]:
        return {
            partner: live
            for partner, record in self._scan().items()
            if (live := [c for c in kv.credentials(partner, record) if c.live])
        }

    def credentials(self, partner: str) -> list[Credential]:
        return self._cached(f"credentials:{partner}", lambda: kv.credentials(partner, self._trusted(partner)))

    def issue_credential(self, partner: str, client_id: str, secret: str, *, now: datetime, reason: str) -> Credential:
        def change(record: Record, events: list[Record]) -> Credential:
            if kv.active(record):
                raise InvalidState(f"{partner} already has an active credential; rotate it instead")
            record["client_id"] = client_id
            credential = self._add_generation(partner, record, secret, now)
            self._add_to_pickup(partner, record, client_secret=secret)
            events.append(kv.event(partner, Event.CREDENTIAL_ISSUED, {**kv.public(credential), "reason": reason}, now))
            return credential

        return self._change(partner, change, now)

    def rotate_credential(self, partner: str, secret: str, *, now: datetime, overlap_until: datetime) -> Credential:
        def change(record: Record, events: list[Record]) -> Credential:
            old = kv.active(record)
            if old is None:
                raise InvalidState(f"{partner} has no active credential to rotate")
            for generation in record["generations"]:  # at most two are ever live
                if generation["state"] == CredentialState.PREVIOUS:
                    self._revoke(partner, record, generation, now, "superseded by a newer rotation", events)
            old["state"], old["revoke_after"] = str(CredentialState.PREVIOUS), overlap_until.isoformat()
            credential = self._add_generation(partner, record, secret, now)
            self._add_to_pickup(partner, record, client_secret=secret)
            details = {**kv.public(credential), "previous": old["id"], "previousValidUntil": overlap_until.isoformat()}
            events.append(kv.event(partner, Event.CREDENTIAL_ROTATED, details, now))
            return credential

        return self._change(partner, change, now)

    def revoke_credential(self, credential_id: str, *, now: datetime, reason: str) -> None:
        client_id = credential_id.rsplit("#", 1)[0]
        partner = partner_of_client(client_id)

        def change(record: Record, events: list[Record]) -> None:
            for generation in record.get("generations", []):
                if generation["id"] == credential_id and generation["state"] != CredentialState.REVOKED:
                    self._revoke(partner, record, generation, now, reason, events)

        self._change(partner, change, now)

    def verify(self, client_id: str, secret: str) -> Credential | None:
        presented = hmac.new(self._cache_key, f"{client_id}\0{secret}".encode(), hashlib.sha256).hexdigest()
        return self._cached(f"verify:{presented}", lambda: self._verify(client_id, secret))

    def _verify(self, client_id: str, secret: str) -> Credential | None:
        partner = partner_of_client(client_id)
        if "/" not in partner:
            return None
        record = self._trusted(partner)
        if record.get("client_id") != client_id:
            return None
        live = [g for g in record.get("generations", []) if g["state"] != CredentialState.REVOKED]
        match = None
        for generation in live:  # compare against every live generation: no early exit on a match
            presented = self._hmac([secret.encode()], like=generation["hash"], key=generation.get("hash_key"))[0]
            if hmac.compare_digest(presented.encode(), generation["hash"].encode()):
                match = generation
        return kv.credential(partner, client_id, match) if match else None

    # --- webhook secrets --------------------------------------------------------------------------

    def put_webhook_secret(self, partner: str, webhook: str, secret: str, *, now: datetime) -> None:
        def change(record: Record, events: list[Record]) -> None:
            self._keep_webhook_secret(partner, record, webhook, secret)

        self._change(partner, change, now)

    def rotate_webhook_secret(
        self, partner: str, webhook: str, secret: str, *, now: datetime, overlap_until: datetime
    ) -> None:
        def change(record: Record, events: list[Record]) -> None:
            current = record.get("webhooks", {}).get(webhook)
            if current is None:
                raise InvalidState(f"webhook {webhook} of {partner} has no signing secret to rotate")
            previous = self._encrypt(self._decrypt(current, f"webhook:{partner}:{webhook}"),
                                     f"previous-webhook:{partner}:{webhook}")  # fmt: skip
            until = overlap_until.isoformat()
            # A previous secret still in its overlap is replaced, so at most two ever sign.
            record.setdefault("previous_webhooks", {})[webhook] = {"secret": previous, "until": until}
            self._keep_webhook_secret(partner, record, webhook, secret)
            details = {"webhook": webhook, "overlapUntil": until}
            events.append(kv.event(partner, Event.WEBHOOK_SECRET_ROTATED, details, now))

        self._change(partner, change, now)

    def webhook_secret(self, partner: str, webhook: str) -> str | None:
        sealed = self._trusted(partner).get("webhooks", {}).get(webhook)
        return self._decrypt(sealed, f"webhook:{partner}:{webhook}") if sealed else None

    def webhook_signing_secrets(self, partner: str, webhook: str, *, now: datetime) -> list[str]:
        record = self._trusted(partner)
        sealed = record.get("webhooks", {}).get(webhook)
        if not sealed:
            return []
        found = [self._decrypt(sealed, f"webhook:{partner}:{webhook}")]
        previous = record.get("previous_webhooks", {}).get(webhook)
        if previous and now < datetime.fromisoformat(previous["until"]):
            found.append(self._decrypt(previous["secret"], f"previous-webhook:{partner}:{webhook}"))
        return found

    def expire_webhook_secrets(self, now: datetime) -> int:
        def ended(record: Record) -> list[str]:
            previous = record.get("previous_webhooks", {})
            return [name for name, kept in previous.items() if datetime.fromisoformat(kept["until"]) <= now]

        def change(record: Record, events: list[Record]) -> int:
            names = ended(record)  # read again: the record may have changed since the scan
            for name in names:
                del record["previous_webhooks"][name]
            return len(names)

        return sum(self._change(partner, change, now) for partner, record in self._scan().items() if ended(record))

    def webhook_secret_names(self, partners: Collection[str] | None = None) -> dict[str, set[str]]:
        if partners is None or len(partners) > SCAN_ABOVE:
            records = self._scan()
            if partners is not None:
                records = {partner: records[partner] for partner in partners if partner in records}
        else:
            records = {partner: self._trusted(partner) for partner in partners}
        return {partner: set(record["webhooks"]) for partner, record in records.items() if record.get("webhooks")}

    def remove_webhook_secret(self, partner: str, webhook: str) -> None:
        def change(record: Record, events: list[Record]) -> None:
            record.get("webhooks", {}).pop(webhook, None)
            record.get("previous_webhooks", {}).pop(webhook, None)

        self._change(partner, change, None)

    # --- the installation's own secrets -------------------------------------------------------------

    def sealed(self, name: str) -> bytes | None:
        record, _ = self._read(f"_installation/{name}")
        sealed = record.get("sealed")
        return base64.b64decode(self._decrypt(sealed, f"value:{name}")) if sealed else None

    def put_sealed(self, name: str, value: bytes) -> None:
        sealed = self._encrypt(base64.b64encode(value).decode(), f"value:{name}")
        with contextlib.suppress(WriteConflict):  # cas=0: when two processes create it at once, the first wins
            self._write(f"_installation/{name}", {"sealed": sealed}, cas=0)

    def replace_sealed(self, name: str, value: bytes) -> None:
        sealed = self._encrypt(base64.b64encode(value).decode(), f"value:{name}")
        self._write(f"_installation/{name}", {"sealed": sealed})

    # --- pickups ----------------------------------------------------------------------------------

    def pending_pickups(self) -> set[str]:
        return {partner for partner, record in self._scan().items() if record.get("pickup")}

    def take_pickup(self, partner: str, *, now: datetime, token_endpoint: str = "") -> Pickup | None:
        """Wrap the pickup (``sys/wrapping/wrap``) and destroy it: only the wrap token leaves Vault."""
        record, _ = self._read(self._path(partner))
        if not self._seal_holds([record])[0] or not record.get("pickup"):
            self._append_events([kv.event(partner, Event.CREDENTIAL_DELIVERY_REFUSED,
                                        {"reason": "nothing to pick up", "code": "SEC-01"}, now)], None)  # fmt: skip
            return None
        payload = json.loads(self._decrypt(record["pickup"], f"pickup:{partner}"))
        document = {"partner": partner, "client_id": payload["client_id"]}
        if payload.get("client_secret") is not None:  # none for a private_key_jwt partner: no key at all
            document["client_secret"] = payload["client_secret"]
        document |= {"token_endpoint": token_endpoint, "webhook_secrets": payload["webhook_secrets"]}
        wrapped = self.vault.call(
            "wrap the pickup", lambda: self.vault.hvac.sys.wrap(payload=document, ttl=self.config.wrap_ttl)
        )
        token, ttl = wrapped["wrap_info"]["token"], int(wrapped["wrap_info"]["ttl"])
        self._write(f"_wraps/{hashlib.sha256(token.encode()).hexdigest()}", {"partner": partner, "at": now.isoformat()})

        def change(record: Record, events: list[Record]) -> None:
            record["pickup"], record["delivered_at"] = None, now.isoformat()
            details = {"clientId": payload["client_id"], "webhooks": sorted(payload["webhook_secrets"]),
                       "via": "response-wrapping", "wrapTtl": ttl}  # fmt: skip
            events.append(kv.event(partner, Event.CREDENTIAL_DELIVERED, details, now))

        try:
            self._change(partner, change, now)
        except ReconcilerError:
            self._destroy_wrap(token)  # never handed out: make sure nobody can use it
            raise
        return Pickup(partner, payload["client_id"], None, {}, wrap_token=token, wrap_ttl=ttl)

    def _destroy_wrap(self, token: str) -> None:
        with contextlib.suppress(hvac.exceptions.VaultError, requests.exceptions.RequestException):
            self.vault.hvac.sys.unwrap(token=token)  # else it expires after wrap_ttl anyway

    def refuse_unwrap(self, token: str, *, now: datetime) -> str | None:
        """Audit a failed unwrap of a token we handed out (someone else unwrapped it, or it expired)."""
        record, _ = self._read(f"_wraps/{hashlib.sha256(token.encode()).hexdigest()}")
        partner = record.get("partner")
        if partner:
            details = {"reason": "wrapped pickup already unwrapped or expired", "code": "SEC-01",
                       "via": "response-wrapping"}  # fmt: skip
            self._append_events([kv.event(partner, Event.CREDENTIAL_DELIVERY_REFUSED, details, now)], None)
        return partner if isinstance(partner, str) else None

    # --- outbox -----------------------------------------------------------------------------------

    def events_after(self, cursor: int) -> list[OutboxEvent]:
        outbox, version = self._read_outbox(fresh=True)
        found = []
        for item in outbox["events"]:
            if item["id"] > cursor and self._landed(item):
                found.append(OutboxEvent(item["id"], item["partner"], item["event"], item["details"], item["time"]))
        audited = [item for item in outbox["events"] if item["id"] <= cursor]
        if len(audited) > OUTBOX_KEEP:
            trimmed = {**outbox, "events": [item for item in outbox["events"] if item["id"] > cursor]}
            try:
                self._outbox = (trimmed, self._write("_outbox", trimmed, cas=version))
            except (WriteConflict, Stalled):  # trimming is housekeeping: a gateway's policy may not write there
                self._outbox = None
        return found

    def _landed(self, item: Record) -> bool:
        if item.get("version") is None or item["id"] in self._confirmed:
            return True
        try:
            data = self.vault.call(
                "confirm an event",
                lambda: self._kv.read_secret_version(
                    self._full(item["path"]), version=item["version"], mount_point=self.config.mount,
                    raise_on_deleted_version=False,
                ),
                missing=lambda: None,
            )  # fmt: skip
        except ReconcilerError:
            return False
        landed = bool(data and (data.get("data") or {}).get("data", {}).get("intent") == item["intent"])
        if landed:
            self._confirmed.add(item["id"])
        return landed

    def close(self) -> None:
        self.vault.close()

    # --- migration --------------------------------------------------------------------------------

    def is_empty(self) -> bool:
        return not self._list("")

    def import_partner(self, partner: str, record: Record) -> None:
        """Write a partner's record as migrated (hashes, ciphertexts already in this store's form)."""
        record = {**record, "intent": secrets.token_hex(12)}
        record["seal"] = self._seal_of(record)
        self._write(self._path(partner), record, cas=0)

    def start_outbox_at(self, next_id: int) -> None:
        outbox, version = self._read_outbox(fresh=True)
        if outbox["next"] < next_id:
            outbox = {**outbox, "next": next_id}
            self._outbox = (outbox, self._write("_outbox", outbox, cas=version))

    def encrypt_for(self, plaintext: str, purpose: str) -> str:
        return self._encrypt(plaintext, purpose)

    # --- records ----------------------------------------------------------------------------------

    def _change(self, partner: str, change: Callable[[Record, list[Record]], T], now: datetime | None) -> T:
        """Read the partner's record, apply ``change`` and write it back with check-and-set, events first."""
        path = self._path(partner)
        record, version = self._read(path)
        events: list[Record] = []
        if record and not self._seal_holds([record])[0]:
            record, events = self._quarantine(partner, record, now or clock.now())  # edited by hand: void
        else:
            record = copy.deepcopy(record) or {"generations": [], "webhooks": {}, "pickup": None}
        result = change(record, events)
        record["intent"] = secrets.token_hex(12)
        record["seal"] = self._seal_of(record)
        ids = self._append_events(events, {"path": path, "version": version + 1, "intent": record["intent"]})
        self._write(path, record, cas=version)
        self._confirmed.update(ids)
        self._cache.clear()
        return result

    def _quarantine(self, partner: str, record: Record, now: datetime) -> tuple[Record, list[Record]]:
        """A record whose seal fails: nothing in it is trusted; keep its generation numbers, all revoked."""
        client_id = client_id_for(partner)
        generations: list[Record] = []
        events: list[Record] = []
        listed = record.get("generations")
        for generation in listed if isinstance(listed, list) else []:
            if not isinstance(generation, dict) or not isinstance(generation.get("generation"), int):
                continue
            number = generation["generation"]
            generations.append({"id": f"{client_id}#{number}", "generation": number, "hash": "",
                                "issued_at": now.isoformat(), "state": str(CredentialState.REVOKED),
                                "revoke_after": None, "revoked_at": now.isoformat()})  # fmt: skip
            if generation.get("state") != CredentialState.REVOKED:
                details = {"credentialId": f"{client_id}#{number}", "reason": "record altered outside partnerctl"}
                events.append(kv.event(partner, Event.CREDENTIAL_REVOKED, details, now))
        return {"client_id": client_id, "generations": generations, "webhooks": {}, "pickup": None}, events

    def _add_generation(self, partner: str, record: Record, secret: str, now: datetime) -> Credential:
        number = max((g["generation"] for g in record["generations"]), default=0) + 1
        generation = {
            "id": f"{record['client_id']}#{number}",
            "generation": number,
            "hash": self._hmac([secret.encode()])[0],
            "issued_at": now.isoformat(),
            "state": str(CredentialState.ACTIVE),
            "revoke_after": None,
            "revoked_at": None,
        }
        record["generations"].append(generation)
        return kv.credential(partner, record["client_id"], generation)

    def _revoke(
        self, partner: str, record: Record, generation: Record, now: datetime, reason: str, events: list[Record]
    ) -> None:
        was_active = generation["state"] == CredentialState.ACTIVE
        generation["state"], generation["revoked_at"] = str(CredentialState.REVOKED), now.isoformat()
        if was_active and record.get("pickup"):  # a revoked secret must not be handed out later
            payload = json.loads(self._decrypt(record["pickup"], f"pickup:{partner}"))
            payload.pop("client_secret", None)
            record["pickup"] = self._encrypt(json.dumps(payload), f"pickup:{partner}")
        details = {"credentialId": generation["id"], "reason": reason}
        events.append(kv.event(partner, Event.CREDENTIAL_REVOKED, details, now))

    def _keep_webhook_secret(self, partner: str, record: Record, webhook: str, secret: str) -> None:
        record.setdefault("client_id", client_id_for(partner))
        record.setdefault("webhooks", {})[webhook] = self._encrypt(secret, f"webhook:{partner}:{webhook}")
        self._add_to_pickup(partner, record, webhook_secrets={webhook: secret})

    def _add_to_pickup(
        self,
        partner: str,
        record: Record,
        *,
        client_secret: str | None = None,
        webhook_secrets: dict[str, str] | None = None,
    ) -> None:
        payload = (json.loads(self._decrypt(record["pickup"], f"pickup:{partner}")) if record.get("pickup")
                   else {"client_id": record["client_id"], "webhook_secrets": {}})  # fmt: skip
        if client_secret is not None:
            payload["client_secret"] = client_secret
        payload["webhook_secrets"].update(webhook_secrets or {})
        record["pickup"] = self._encrypt(json.dumps(payload), f"pickup:{partner}")

    def _trusted(self, partner: str) -> Record:
        record, _ = self._read(self._path(partner))
        return record if record and self._seal_holds([record])[0] else {}

    def _scan(self) -> dict[str, Record]:
        """Every partner's record whose seal holds; records edited by hand count as absent (drift)."""
        paths = [
            f"{tenant}{partner}".rstrip("/")
            for tenant in self._list("")
            if tenant.endswith("/") and not tenant.startswith("_")
            for partner in self._list(tenant)
            if partner.endswith("/")
        ]
        with ThreadPoolExecutor(max_workers=SCAN_THREADS) as pool:
            records = list(pool.map(lambda partner: self._read(self._path(partner))[0], paths))
        present = [(partner, record) for partner, record in zip(paths, records, strict=True) if record]
        holds = self._seal_holds([record for _, record in present])
        return {partner: record for (partner, record), ok in zip(present, holds, strict=True) if ok}

    def _list(self, folder: str) -> list[str]:
        listing = self.vault.call(
            "list records",
            lambda: self._kv.list_secrets(self._full(folder), mount_point=self.config.mount),
            missing=lambda: {"data": {"keys": []}},
        )
        return list(listing["data"]["keys"])

    def _read(self, path: str) -> tuple[Record, int]:
        """The record at ``path`` and its KV version (0 when it never existed; a deleted one reads as empty)."""
        full = self._full(path)

        def absent() -> Any:
            metadata = self.vault.call(
                "read record metadata",
                lambda: self._kv.read_secret_metadata(full, mount_point=self.config.mount),
                missing=lambda: None,
            )
            return {
                "data": {"data": {}, "metadata": {"version": metadata["data"]["current_version"] if metadata else 0}}
            }

        answer = self.vault.call(
            "read a record",
            lambda: self._kv.read_secret_version(full, mount_point=self.config.mount, raise_on_deleted_version=True),
            missing=absent,
        )
        return dict(answer["data"]["data"] or {}), int(answer["data"]["metadata"]["version"])

    def _write(self, path: str, record: Record, *, cas: int | None = None) -> int:
        answer = self.vault.call(
            "write a record",
            lambda: self._kv.create_or_update_secret(self._full(path), record, cas=cas, mount_point=self.config.mount),
        )
        return int(answer["data"]["version"])

    def _read_outbox(self, *, fresh: bool = False) -> tuple[Record, int]:
        if fresh or self._outbox is None:
            record, version = self._read("_outbox")
            self._outbox = (record or {"next": 1, "events": []}, version)
        return self._outbox

    def _append_events(self, events: list[Record], intent: Record | None) -> list[int]:
        """Add ``events`` to _outbox (retrying on conflict); ``intent`` names the record change they wait for."""
        if not events:
            return []
        for attempt in range(10):
            outbox, version = self._read_outbox(fresh=attempt > 0)
            first = outbox["next"]
            items = [
                {**event, "id": first + index, **(intent or {"version": None})} for index, event in enumerate(events)
            ]
            updated = {"next": first + len(items), "events": outbox["events"] + items}
            try:
                self._outbox = (updated, self._write("_outbox", updated, cas=version))
            except WriteConflict:
                continue
            return [item["id"] for item in items]
        raise WriteConflict("the audit outbox in Vault kept changing under us; nothing was written. Run again.")

    def _path(self, partner: str) -> str:
        return f"{partner}/credentials"

    def _full(self, path: str) -> str:
        return f"{self.config.prefix}/{path}".rstrip("/")

    def _cached(self, key: str, compute: Callable[[], T]) -> T:
        if self._cache_seconds <= 0:
            return compute()
        now = time.monotonic()
        hit = self._cache.get(key)
        if hit is not None and hit[0] > now:
            return hit[1]  # type: ignore[no-any-return]
        value = compute()
        if value is not None and value != []:  # a refusal is never cached: a new credential works at once
            if len(self._cache) > 10_000:
                self._cache.clear()
            self._cache[key] = (now + self._cache_seconds, value)
        return value

    # --- Transit ----------------------------------------------------------------------------------

    def _hmac(self, inputs: Iterable[bytes], *, like: str | None = None, key: str | None = None) -> list[str]:
        """Transit HMAC-SHA-256 of each input; ``like`` (an earlier HMAC) picks the key version to use."""
        name = key or self.config.key
        body: dict[str, Any] = {"batch_input": [{"input": base64.b64encode(item).decode()} for item in inputs]}
        if like is not None and like.startswith("vault:v"):
            body["key_version"] = int(like.split(":")[1][1:])
        url = f"/v1/{self.config.transit}/hmac/{name}/sha2-256"
        answer = self.vault.call("compute a keyed hash (Transit)", lambda: self.vault.hvac.adapter.post(url, json=body))
        return [item["hmac"] for item in answer["data"]["batch_results"]]

    def _seal_of(self, record: Record) -> str:
        return self._hmac([kv.canonical(record)])[0]

    def _seal_holds(self, records: list[Record]) -> list[bool]:
        """Whether each record still carries the seal we computed over it (one Transit call per key version)."""
        verdicts = [False] * len(records)
        by_version: dict[str, list[int]] = {}
        for index, record in enumerate(records):
            seal = record.get("seal")
            if isinstance(seal, str) and seal.startswith("vault:v"):
                by_version.setdefault(seal.split(":")[1], []).append(index)
        for version, indexes in by_version.items():
            expected = self._hmac([kv.canonical(records[i]) for i in indexes], like=f"vault:{version}:")
            for index, seal in zip(indexes, expected, strict=True):
                verdicts[index] = hmac.compare_digest(seal.encode(), records[index]["seal"].encode())
        return verdicts

    def _encrypt(self, plaintext: str, purpose: str) -> str:
        # The purpose travels inside the ciphertext, so one partner's sealed value cannot be pasted into another's.
        envelope = base64.b64encode(json.dumps({"purpose": purpose, "value": plaintext}).encode()).decode()
        answer = self.vault.call(
            "encrypt (Transit)",
            lambda: self.vault.hvac.secrets.transit.encrypt_data(self.config.key, envelope,
                                                                 mount_point=self.config.transit),
        )  # fmt: skip
        return str(answer["data"]["ciphertext"])

    def _decrypt(self, ciphertext: str, purpose: str) -> str:
        answer = self.vault.call(
            "decrypt (Transit)",
            lambda: self.vault.hvac.secrets.transit.decrypt_data(self.config.key, ciphertext,
                                                                 mount_point=self.config.transit),
        )  # fmt: skip
        envelope = json.loads(base64.b64decode(answer["data"]["plaintext"]))
        if envelope.get("purpose") != purpose:
            raise IntegrityError(f"a sealed value in Vault was moved from elsewhere ({purpose}); rotate it")
        return str(envelope["value"])
