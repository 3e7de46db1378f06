"""The record step: live records are written with their status derived and the audit entries explaining them.

The executor, the gateway and the dispatcher all change live state; each hands its changed records
and audit events to :meth:`Journal.record`, which derives phase, health and conditions (DESIGN §9),
copies the secret store's new credential events into the audit log, and has the journal store
commit records and entries together. None of them needs another to write.
"""

from __future__ import annotations

from collections.abc import Mapping
from contextlib import AbstractContextManager
from datetime import datetime
from typing import Any

from reconciler.credentials import active_credential
from reconciler.engine.status import derive
from reconciler.stores import Stores
from reconciler.stores.records import AuditEvent, PartnerRecord
from reconciler.vocabulary import Event

__all__ = ["Journal"]

# Deriving status for more records than this reads every live credential in one call, fewer one by one.
BULK_READ = 50


class Journal:
    def __init__(self, stores: Stores, *, actor: str) -> None:
        self.stores = stores
        self.actor = actor

    def exclusive(self, *, timeout: float | None = None) -> AbstractContextManager[None]:
        """Be the installation's only writer (read, change, record) for the block."""
        return self.stores.journal.exclusive(timeout=timeout)

    def recover(self, *, now: datetime) -> None:
        """Drop what a crashed writer left past the committed head, then audit the secret store's pending events."""
        self.stores.journal.recover()
        self.record([], [], now=now)

    def record(self, records: list[PartnerRecord], events: list[AuditEvent], *, now: datetime) -> None:
        """Derive ``records``' status, then commit them with ``events`` and the secret store's new events."""
        journal, secrets = self.stores.journal, self.stores.secrets
        head = journal.audit_head()
        outbox = secrets.events_after(head.outbox_cursor)
        entries = [
            AuditEvent(Event(item.event), item.partner, item.details, self.actor, datetime.fromisoformat(item.time))
            for item in outbox
        ] + events
        if not entries and not records:
            return
        self._derive(records, now)
        journal.record(entries, records, now=now, outbox_cursor=outbox[-1].id if outbox else None)
        if entries:
            self.stores.partners.announce(entries)

    def event(self, name: Event, partner: str | None, details: Mapping[str, Any]) -> AuditEvent:
        return AuditEvent(name, partner, dict(details), self.actor)

    def _derive(self, records: list[PartnerRecord], now: datetime) -> None:
        if not records:
            return
        secrets = self.stores.secrets
        held = secrets.webhook_secret_names([record.key for record in records])
        if len(records) > BULK_READ:
            credentials = secrets.live_credentials()
        else:
            credentials = {record.key: secrets.credentials(record.key) for record in records}
        for record in records:
            active = active_credential(credentials.get(record.key, []))
            derive(record, active, webhooks_held=held.get(record.key, set()), now=now)
