"""Which alerts an apply raises (DESIGN §12 *Notifications*), de-duplicated, and how they read: Slack or CloudEvents.

Alerts come from the audit chain, the single source of truth, read after a cursor kept in the journal
(so what the gateway and the dispatcher audited is noticed at the next apply), and from the apply's own
outcome: failed actions and changes awaiting approval for more than a day. An alert's key is sent at
most once per interval. An alert holds the partner's id, event names, webhook names, counts and codes,
nothing else: never a secret, a URL, a contact, a request path or a payload field. No I/O but the
journal's; :mod:`reconciler.webhooks.notify` posts them.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

from reconciler.engine.executor import Result
from reconciler.errors import Busy
from reconciler.stores.journal import AuditStore, SettingsStore
from reconciler.vocabulary import ActionName, BlockedReason, Event

__all__ = [
    "BURST_WINDOW", "CURSOR", "LOOKBACK", "PENDING", "PENDING_AFTER", "SENT", "Alert", "Collector", "cloudevent",
    "slack",
]  # fmt: skip

CURSOR = "notify-cursor"  # the last audit seq looked at
SENT = "notify-sent"  # alert key -> when it was last sent (ISO 8601), pruned after its window
PENDING = "notify-pending"  # partner -> when its change was first seen awaiting approval
LOOKBACK = timedelta(days=1)  # the first pass (no cursor yet) alerts on what was audited this recently
PENDING_AFTER = timedelta(days=1)  # a change awaiting approval this long is alerted
BURST_WINDOW = timedelta(hours=1)  # denied access: one alert per partner per hour (or per interval, if longer)
LOCK_SECONDS = 2.0  # the journal's writer lock, held for a few settings; busy: this pass is noticed next time

SOURCE = "partnerctl"
TYPE_PREFIX = "dev.scp.partnerctl."

# Audit events that are alerts as they stand, and how each reads.
_AUDITED = {
    Event.WEBHOOK_FLAGGED: "webhook {webhook} of {partner} was flagged{after} at {time} (LOG-01)",
    Event.WEBHOOK_DEACTIVATED: "webhook {webhook} of {partner} was deactivated{after} at {time} (LOG-01)",
    Event.CREDENTIAL_DELIVERY_REFUSED: "a credential pickup for {partner} was refused at {time} (SEC-01)",
    Event.REVIEW_OVERDUE: "the access review of {partner} is overdue (due {due})",
}


class Journal(AuditStore, SettingsStore, Protocol):
    """What the alerts read and remember: the audit chain and three settings."""


@dataclass(frozen=True)
class Alert:
    """One alert: ``kind`` is an audit event name or ``apply.failed``, ``rotation.failed``, ``approval.pending``."""

    kind: str
    partner: str | None
    time: datetime
    text: str  # one line for people
    data: dict[str, Any]  # for machines: only non-personal, non-secret fields
    detail: str = ""  # what else tells two alerts of one kind and partner apart (a webhook, an action)
    id: str = field(default_factory=lambda: uuid.uuid4().hex)

    @property
    def key(self) -> str:
        return "|".join((self.kind, self.partner or "", self.detail))


def slack(alert: Alert) -> dict[str, Any]:
    """Slack-compatible (incoming webhooks, and the many chat tools that accept the same shape)."""
    return {"text": f"partnerctl: {alert.text}"}


def cloudevent(alert: Alert) -> dict[str, Any]:
    """CloudEvents 1.0, structured JSON mode (``application/cloudevents+json``)."""
    event: dict[str, Any] = {
        "specversion": "1.0",
        "id": alert.id,
        "source": SOURCE,
        "type": TYPE_PREFIX + alert.kind,
        "time": rfc3339(alert.time),
        "datacontenttype": "application/json",
        "data": alert.data,
    }
    if alert.partner:
        event["subject"] = alert.partner
    return event


def rfc3339(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


class Collector:
    """The alerts of each finished apply, once per key and interval; remembers its place in the journal."""

    def __init__(self, *, interval: timedelta) -> None:
        self.interval = interval

    def collect(self, journal: Journal, *, results: Iterable[Result], blocked: list[dict[str, str]] | None,
                revision: str, now: datetime) -> list[Alert]:  # fmt: skip
        """The alerts to send now. ``blocked``: the plan's blocked changes, None when there was no plan.

        The audit chain is read without the lock (it is append-only); the settings are checked and written
        under it, so two processes finishing an apply together do not both send what they both read."""
        cursor = journal.setting(CURSOR)
        head = journal.audit_head().seq
        start = cursor if isinstance(cursor, int) and cursor <= head else None
        candidates = list(self._audited(journal, start, head, now))
        candidates += self._failed(results, revision, now)
        try:
            with journal.exclusive(timeout=LOCK_SECONDS):
                if journal.setting(CURSOR) != cursor:
                    return []  # another process took these entries; this apply's own alerts recur next time
                pending = self._pending(journal, blocked, now)
                candidates += pending
                sent = self._unsent(journal, candidates, now)
                if head != cursor:
                    journal.put_setting(CURSOR, head)
        except Busy:
            return []
        return sent

    # --- where alerts come from -------------------------------------------------------------------

    def _audited(self, journal: Journal, start: int | None, head: int, now: datetime) -> Iterator[Alert]:
        if start is not None and start >= head:
            return  # nothing new: no read at all (the loop's usual pass)
        after, since = (start, None) if start is not None else (0, now - LOOKBACK)
        denied: dict[str, tuple[int, set[str], datetime]] = {}
        for entry in _entries(journal, after, head):
            event, partner = entry.get("event"), entry.get("partner")
            moment = _time(entry.get("time"), now)
            if since is not None and moment < since:
                continue
            found = entry.get("details")
            details: dict[str, Any] = found if isinstance(found, dict) else {}
            if event == Event.ACCESS_DENIED and partner:
                count, scopes, _ = denied.get(partner, (0, set(), moment))
                scope = details.get("requiredScope")
                denied[partner] = (count + 1, scopes | ({scope} if isinstance(scope, str) else set()), moment)
            elif event in _AUDITED:
                yield _audited_alert(Event(event), partner, details, moment)
        for partner, (count, scopes, moment) in denied.items():
            text = f"{partner} was denied access {count} time{'s' if count != 1 else ''} (PRIV-01)"
            data = {"partner": partner, "event": str(Event.ACCESS_DENIED), "code": "PRIV-01", "count": count,
                    "requiredScopes": sorted(scopes)}  # fmt: skip
            yield Alert(str(Event.ACCESS_DENIED), partner, moment, text, data)

    def _failed(self, results: Iterable[Result], revision: str, now: datetime) -> list[Alert]:
        alerts = []
        for result in results:
            if result.ok:
                continue
            kind = "rotation.failed" if result.action == ActionName.ROTATE_CREDENTIAL else "apply.failed"
            text = f"{result.action} of {result.partner} failed at revision {revision[:12]}; see partnerctl status"
            data = {"partner": result.partner, "event": kind, "action": str(result.action), "revision": revision}
            alerts.append(Alert(kind, result.partner, now, text, data, detail=str(result.action)))
        return alerts

    def _pending(self, journal: Journal, blocked: list[dict[str, str]] | None, now: datetime) -> list[Alert]:
        """Changes awaiting approval longer than a day; first-seen times kept while they stay blocked."""
        if blocked is None:
            return []
        seen = journal.setting(PENDING)
        seen = seen if isinstance(seen, dict) else {}
        awaiting = sorted({item["partner"] for item in blocked if item.get("reason") == BlockedReason.AWAITING_APPROVAL
                           and item.get("partner")})  # fmt: skip
        current = {partner: seen.get(partner) or now.isoformat() for partner in awaiting}
        if current != seen:
            journal.put_setting(PENDING, current)
        alerts = []
        for partner, first in current.items():
            since = _time(first, now)
            if now - since > PENDING_AFTER:
                hours = int((now - since).total_seconds() // 3600)
                text = f"a change to {partner} has awaited approval for {hours} hours"
                data = {"partner": partner, "event": "approval.pending", "reason": str(BlockedReason.AWAITING_APPROVAL),
                        "pendingSince": rfc3339(since), "pendingHours": hours}  # fmt: skip
                alerts.append(Alert("approval.pending", partner, now, text, data))
        return alerts

    # --- de-duplication ---------------------------------------------------------------------------

    def _unsent(self, journal: Journal, candidates: list[Alert], now: datetime) -> list[Alert]:
        """The candidates whose key was not sent within its window; remembers them as sent now."""
        stored = journal.setting(SENT)
        sent: dict[str, str] = stored if isinstance(stored, dict) else {}
        fresh = []
        for alert in candidates:
            last = sent.get(alert.key)
            if last is not None and now - _time(last, now) < self._window(alert.kind):
                continue
            sent[alert.key] = now.isoformat()
            fresh.append(alert)
        longest = max(self.interval, BURST_WINDOW)
        kept = {key: when for key, when in sent.items() if now - _time(when, now) < longest}
        if kept != stored:
            journal.put_setting(SENT, kept)
        return fresh

    def _window(self, kind: str) -> timedelta:
        return max(self.interval, BURST_WINDOW) if kind == Event.ACCESS_DENIED else self.interval


def _entries(journal: Journal, after: int, head: int) -> Iterator[dict[str, Any]]:
    """The committed entries after seq ``after``, up to ``head``. The store skips those before the cursor without
    decoding them; reading stops at the head (past it: a crashed write)."""
    entries = journal.audit_entries(after)
    try:
        for entry in entries:
            seq = entry.get("seq") if isinstance(entry, dict) else None
            if not isinstance(seq, int) or seq <= after:
                continue
            if seq > head:
                break
            yield entry
    finally:
        close = getattr(entries, "close", None)
        if close is not None:
            close()  # the file or the database page read stops here


def _audited_alert(event: Event, partner: str | None, details: dict[str, Any], moment: datetime) -> Alert:
    data: dict[str, Any] = {"partner": partner, "event": str(event)}
    webhook = details.get("name") if event in (Event.WEBHOOK_FLAGGED, Event.WEBHOOK_DEACTIVATED) else None
    if isinstance(webhook, str):
        data["webhook"] = webhook
    if isinstance(details.get("code"), str):
        data["code"] = details["code"]
    due = details.get("dueAt") if event == Event.REVIEW_OVERDUE else None
    if isinstance(due, str):
        data["dueAt"] = due
    failures = details.get("failures")
    if isinstance(failures, int):
        data["failures"] = failures
    after = f" after {failures} consecutive failures" if isinstance(failures, int) else ""
    text = _AUDITED[event].format(partner=partner or "a partner", webhook=webhook or "?", after=after,
                                  time=rfc3339(moment), due=due or "?")  # fmt: skip
    return Alert(str(event), partner, moment, text, data, detail=webhook or "")


def _time(text: object, default: datetime) -> datetime:
    if not isinstance(text, str):
        return default
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return default
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)
