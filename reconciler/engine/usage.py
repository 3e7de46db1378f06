"""Unused scopes (DESIGN §12): granted for ``unusedScopeDays`` and not used at the gateway in that time."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from reconciler.stores.records import PartnerRecord, ScopeUse
from reconciler.vocabulary import Phase

__all__ = ["DEFAULT_UNUSED_DAYS", "granted_since", "last_used", "unused_days", "unused_scopes"]

DEFAULT_UNUSED_DAYS = 90


def unused_scopes(
    granted: list[str], usage: dict[str, ScopeUse], *, granted_since: datetime, now: datetime, unused_days: int
) -> list[str]:
    """The scopes of ``granted`` (in its order) held since ``granted_since`` for at least ``unused_days`` and
    not used in the last ``unused_days`` days (``usage``: the partner's, by scope)."""
    window = timedelta(days=unused_days)
    if now - granted_since < window:
        return []
    since = now - window
    unused = []
    for scope in granted:
        moment = last_used(usage.get(scope))
        if moment is None or moment < since:
            unused.append(scope)
    return unused


def last_used(use: ScopeUse | None) -> datetime | None:
    """A scope's last use; from its day counts (the end of the last day used) if the store had no time."""
    if use is None:
        return None
    if use.last_used:
        moment = datetime.fromisoformat(use.last_used)
        return moment if moment.tzinfo else moment.replace(tzinfo=UTC)
    days = [day for day, count in use.days.items() if count > 0]
    if not days:
        return None
    return datetime.fromisoformat(max(days)).replace(tzinfo=UTC) + timedelta(days=1)


def granted_since(record: PartnerRecord) -> datetime | None:
    """When the partner got its scopes: when it was first registered (applied); without that, the approval of
    its applied manifest. None for a partner that holds no scopes (awaiting approval, decommissioned).

    The record keeps no time per scope: a scope added by a later approved change counts from registration.
    The approval time is not used first because every approval, a bare access review included, would
    start the clock again."""
    if record.phase in (Phase.PENDING_APPROVAL, Phase.DECOMMISSIONED):
        return None
    moment = record.registered_at or (record.approval or {}).get("approvedAt")
    if not moment:
        return None
    parsed = datetime.fromisoformat(str(moment))
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def unused_days(record: PartnerRecord) -> int:
    """The tenant policy's ``accessReview.unusedScopeDays`` as applied with the partner (default 90)."""
    days = getattr(record, "unused_scope_days", None)
    return days if isinstance(days, int) and not isinstance(days, bool) and days > 0 else DEFAULT_UNUSED_DAYS
