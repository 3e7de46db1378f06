"""The partner-record store: one live record per partner (SQLite, PartnerIntegration objects, PostgreSQL)."""

from __future__ import annotations

from typing import Protocol

from reconciler.stores.records import AuditEvent, PartnerRecord

__all__ = ["PartnerStore"]


class PartnerStore(Protocol):
    """Where each partner's applied state is kept. Every method may raise a :class:`~reconciler.errors.Transient`
    or :class:`~reconciler.errors.Stalled` error when the backend cannot be used."""

    def partners(self) -> dict[str, PartnerRecord]:
        """Every partner record, decommissioned ones included."""

    def partner(self, key: str) -> PartnerRecord | None: ...

    def save(self, records: list[PartnerRecord]) -> None:
        """Write ``records`` (each replaces the partner's previous record)."""

    def version(self) -> str | None:
        """Changes whenever partner records change, by partnerctl or by hand; None if unknowable."""

    def announce(self, entries: list[AuditEvent]) -> None:
        """Tell the platform's own event stream about audited events (Kubernetes Events); may do nothing."""

    def close(self) -> None: ...
