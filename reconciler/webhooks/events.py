"""Platform events: checking a published event against the catalog, fanning it out to subscriptions,
and shaping each partner's payload (mapping, and nothing above the partner's clearance: PRIV-01 for push);
and the platform's service tokens (bearer tokens for the platform's own services, kept as keyed hashes).
"""

from __future__ import annotations

import secrets as random
import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from reconciler.credentials import hashes_match, keyed_hash
from reconciler.errors import ReconcilerError
from reconciler.manifests.models import Classification
from reconciler.stores import Stores
from reconciler.stores.records import DeliveryRow, PartnerRecord, StoredEvent
from reconciler.stores.secrets import SecretStore
from reconciler.vocabulary import DeliveryStatus, WebhookState

__all__ = [
    "PLATFORM_TOKEN", "PLATFORM_TOKEN_HASH", "PLATFORM_TOKEN_KEY", "EventError", "ServiceToken", "Shaper",
    "platform_token_valid", "publish",
]  # fmt: skip

# Names in the secret store of the platform-service token's HMAC key and keyed hash.
PLATFORM_TOKEN_KEY = "platform-events-token-key"  # noqa: S105 - a name, not a secret
PLATFORM_TOKEN_HASH = "platform-events-token-hash"  # noqa: S105 - a name, not a secret


@dataclass(frozen=True)
class ServiceToken:
    """A bearer token for one of the platform's own services: shown once when issued, kept only as a keyed
    hash (under an HMAC key of its own) in the secret store, checked in constant time."""

    prefix: str
    key_name: str
    hash_name: str

    def issue(self, secrets: SecretStore) -> str:
        """A new token, replacing the previous one (which stops working at once)."""
        token = self.prefix + random.token_urlsafe(32)
        key = random.token_bytes(32)
        secrets.replace_sealed(self.key_name, key)
        secrets.replace_sealed(self.hash_name, keyed_hash(key, token).encode())
        return token

    def valid(self, secrets: SecretStore, presented: str) -> bool:
        key, expected = secrets.sealed(self.key_name), secrets.sealed(self.hash_name)
        if key is None or expected is None or not presented:
            return False
        return hashes_match(expected.decode(), keyed_hash(key, presented))


# POST /internal/events on the gateway (``partnerctl events token``).
PLATFORM_TOKEN = ServiceToken("scp_pt_", PLATFORM_TOKEN_KEY, PLATFORM_TOKEN_HASH)


def platform_token_valid(secrets: SecretStore, presented: str) -> bool:
    """Constant-time check of a platform-service token against its keyed hash."""
    return PLATFORM_TOKEN.valid(secrets, presented)


class EventError(ReconcilerError):  # a usage problem of the publisher, exit 1
    """A published event that the catalog does not allow."""


def catalog_event(catalog: dict[str, Any] | None, event_type: str) -> dict[str, Any]:
    if catalog is None:
        raise EventError("no scope catalog has been applied yet: run partnerctl apply first")
    events = {event["name"]: event for event in catalog.get("spec", {}).get("events", [])}
    if event_type not in events:
        raise EventError(f"unknown event type {event_type!r}; the catalog has: {', '.join(sorted(events)) or 'none'}")
    definition: dict[str, Any] = events[event_type]
    return definition


def check_payload(definition: dict[str, Any], data: Any) -> None:
    """Every catalogued field present, nothing uncatalogued (an unclassified field could leak)."""
    if not isinstance(data, dict):
        raise EventError("event data must be a JSON object of the catalogued fields")
    fields = definition["fields"]
    missing = sorted(set(fields) - set(data))
    unknown = sorted(set(data) - set(fields))
    if missing:
        raise EventError(f"{definition['name']} is missing catalogued field(s): {', '.join(missing)}")
    if unknown:
        raise EventError(
            f"{definition['name']} has field(s) the catalog does not classify: {', '.join(unknown)}; "
            "add them to policies/scopes.yaml first"
        )


def publish(stores: Stores, event_type: str, data: Any, *, now: datetime) -> tuple[StoredEvent, int]:
    """Store the event and a delivery per subscribed webhook, atomically; then it is acknowledged."""
    definition = catalog_event(stores.journal.setting("catalog"), event_type)
    check_payload(definition, data)
    event = StoredEvent(f"evt_{uuid.uuid4().hex}", event_type, data, now.isoformat())
    deliveries = []
    for record in stores.partners.partners().values():
        if not record.usable:
            continue
        for hook in record.webhooks.values():
            if event_type in hook.events:
                status = DeliveryStatus.HELD if hook.state == WebhookState.DEACTIVATED else DeliveryStatus.PENDING
                deliveries.append(
                    DeliveryRow(
                        0, event.id, record.key, hook.name, f"msg_{uuid.uuid4().hex}", status, 0, now.timestamp()
                    )
                )
    stores.journal.enqueue(event, deliveries)
    return event, len(deliveries)


class Shaper:
    """Shapes events for partners: drops every field above the partner's clearance, then maps names."""

    def __init__(self, catalog: dict[str, Any]) -> None:
        self.catalog = catalog
        self.levels = {scope["name"]: Classification[scope["classification"]] for scope in catalog["spec"]["scopes"]}
        self._definitions: dict[str, dict[str, Any]] = {}

    def shape(self, record: PartnerRecord, webhook: str, event: StoredEvent) -> dict[str, Any]:
        if event.type not in self._definitions:
            self._definitions[event.type] = catalog_event(self.catalog, event.type)
        fields = self._definitions[event.type]["fields"]
        scopes = record.scopes
        clearance = max((self.levels[s] for s in scopes if s in self.levels), default=Classification.anonymous)
        hook = record.webhooks[webhook]
        mapping: dict[str, Any] = next((m for m in record.spec.get("mappings", []) if m["name"] == hook.mapping), {})
        renames = mapping.get("fields", {}) if mapping.get("event") == event.type else {}
        shaped = {}
        for field, value in event.data.items():
            level = fields.get(field)
            if level is None or Classification[level] > clearance:
                continue  # never sent: above what the partner's scopes allow
            shaped[renames.get(field, field)] = value
        return shaped
