"""Access reviews (DESIGN §12): when a partner's access was last reviewed, and when the next review is due."""

from __future__ import annotations

from datetime import datetime, timedelta

from reconciler.stores.records import PartnerRecord

__all__ = ["due_at", "overdue", "reviewed_at"]


def reviewed_at(record: PartnerRecord) -> datetime | None:
    """The time of the last approved review: the approval of the applied manifest (its whole file)."""
    moment = record.reviewed_at or (record.approval or {}).get("approvedAt")
    return datetime.fromisoformat(moment) if moment else None


def due_at(record: PartnerRecord) -> datetime | None:
    """When the next review falls due: ``reviewDays`` after the last one."""
    last = reviewed_at(record)
    return last + timedelta(days=record.review_days) if last is not None else None


def overdue(record: PartnerRecord, now: datetime) -> bool:
    due = due_at(record)
    return due is not None and now >= due and not record.decommissioned
