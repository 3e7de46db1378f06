"""The ports (DESIGN §10): what the core asks of the places state is kept, and the records they keep.

    source.Source / Revision    the partner repository (desired state and its approval history)
    partners.PartnerStore       one live record per partner
    journal.JournalStore        the audit chain and head, settings, plan memo, webhook outbox, and
                                what gateway replicas share: rate-limit buckets, keys seen once,
                                revoked access tokens (journal.LimitStore, journal.RevocationStore)
    secrets.SecretStore         keyed hashes, sealed pickups, webhook signing secrets

Backends (``reconciler.backends``) implement them; the command line chooses them by URL and hands
them to the engine, the gateway and the dispatcher as one :class:`Stores`.
"""

from __future__ import annotations

from dataclasses import dataclass

from reconciler.stores.journal import (
    AuditStore,
    Bucket,
    JournalStore,
    LimitStore,
    MemoStore,
    OutboxStore,
    RevocationStore,
    SettingsStore,
)
from reconciler.stores.partners import PartnerStore
from reconciler.stores.records import (
    AuditEvent,
    AuditHead,
    DeliveryRow,
    OutboxEvent,
    PartnerRecord,
    Pickup,
    StoredEvent,
    WebhookRecord,
)
from reconciler.stores.secrets import SecretStore
from reconciler.stores.source import Commit, Revision, Signature, Source

__all__ = [
    "AuditEvent",
    "AuditHead",
    "AuditStore",
    "Bucket",
    "Commit",
    "DeliveryRow",
    "JournalStore",
    "LimitStore",
    "MemoStore",
    "OutboxEvent",
    "OutboxStore",
    "PartnerRecord",
    "PartnerStore",
    "Pickup",
    "Revision",
    "RevocationStore",
    "SecretStore",
    "SettingsStore",
    "Signature",
    "Source",
    "StoredEvent",
    "Stores",
    "WebhookRecord",
]


@dataclass
class Stores:
    """The stores of one installation, as the command line wired them."""

    partners: PartnerStore
    journal: JournalStore
    secrets: SecretStore

    def close(self) -> None:
        closed: list[object] = []
        for store in (self.partners, self.journal, self.secrets):
            if not any(store is done for done in closed):  # one backend may play two parts
                store.close()
                closed.append(store)

    def __enter__(self) -> Stores:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
