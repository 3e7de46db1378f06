"""What operators (CLI) and partners (gateway) do with a partner's webhooks: read the delivery log, replay a window."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from reconciler.engine.journal import Journal
from reconciler.errors import InvalidState, NotFound, UsageError
from reconciler.stores import Stores
from reconciler.stores.records import DeliveryAttempt
from reconciler.vocabulary import DeliveryStatus, Event, WebhookState

__all__ = ["Replay", "attempt_json", "replay", "window"]

REPLAYED = (DeliveryStatus.FAILED, DeliveryStatus.HELD)
ALSO_DELIVERED = (*REPLAYED, DeliveryStatus.DELIVERED)


@dataclass(frozen=True)
class Replay:
    """What a replay put back in the outbox: per webhook, how many deliveries; and the webhooks it left out."""

    partner: str
    since: str
    until: str
    counts: dict[str, int]
    deactivated: list[str] = field(default_factory=list)

    @property
    def count(self) -> int:
        return sum(self.counts.values())


def attempt_json(attempt: DeliveryAttempt) -> dict[str, Any]:
    """One entry of the delivery log as ``webhooks deliveries --output json`` shows it (DESIGN §11)."""
    return {"webhook": attempt.webhook, "eventId": attempt.message_id, "type": attempt.event_type,
            "time": attempt.time, "attempt": attempt.attempt, "status": attempt.status,
            "httpStatus": attempt.http_status, "error": attempt.error, "latencyMs": attempt.latency_ms}  # fmt: skip


def window(
    since: datetime, until: datetime | None, *, now: datetime, longest: timedelta | None = None
) -> tuple[str, str]:
    """``[since, until)`` as the outbox's ISO 8601 UTC; ``until`` defaults to the next whole second, so that
    the window holds everything received up to now. A window that is empty, in the future or (when
    ``longest`` is given) longer than that is a usage error."""
    end = until or (now + timedelta(seconds=1)).replace(microsecond=0)
    start, end = (_utc(moment) for moment in (since, end))
    if start >= end:
        raise UsageError(f"the window's start ({start.isoformat()}) must be before its end ({end.isoformat()})")
    if start > now:
        raise UsageError(f"the window starts in the future ({start.isoformat()})")
    if longest is not None and end - start > longest:
        raise UsageError(f"a window is at most {longest.days} days long; replay a longer outage in parts")
    return start.isoformat(), end.isoformat()


def replay(
    stores: Stores,
    journal: Journal,
    partner: str,
    *,
    since: str,
    until: str,
    webhook: str | None = None,
    include_delivered: bool = False,
    now: datetime,
    lock_timeout: float | None = None,
) -> Replay:
    """Send again the partner's failed and held deliveries (with ``include_delivered``, all of them) of events
    received in ``[since, until)``, with their original ``webhook-id``. The dispatcher shapes each payload
    at send time, against the partner's scopes *then*. Audited as ``webhook.replayed``, one entry per webhook.

    A deactivated webhook is never replayed: its replay would only be held. It is left out and reported, and
    refused (saying how to recover it) when nothing else is left."""
    with journal.exclusive(timeout=lock_timeout):
        record = stores.partners.partner(partner)
        if record is None:
            raise NotFound(f"unknown partner {partner!r}; see partnerctl status for the list")
        if not record.usable:
            raise InvalidState(f"{partner} is {record.phase}: it receives no webhooks, so nothing is replayed")
        if webhook is not None and webhook not in record.webhooks:
            known = ", ".join(sorted(record.webhooks)) or "none"
            raise NotFound(f"{partner} has no webhook {webhook!r} (it has: {known})")
        names = [webhook] if webhook is not None else sorted(record.webhooks)
        deactivated = [name for name in names if record.webhooks[name].state == WebhookState.DEACTIVATED]
        if deactivated and len(deactivated) == len(names):  # nothing left to replay
            hook = record.webhooks[deactivated[0]]
            raise InvalidState(
                f"webhook {hook.name!r} of {partner} is deactivated (LOG-01: {hook.last_error or 'failed'}), so a "
                "replay would only be held. Fix the endpoint; the next connectivity check (partnerctl apply, or "
                "partnerctl run within its check interval) pings it, and a 2xx answer reactivates it and sends its "
                "held deliveries. Replay the window after that for what failed before it was deactivated."
            )
        statuses = tuple(str(status) for status in (ALSO_DELIVERED if include_delivered else REPLAYED))
        counts = {}
        for name in names:
            if name not in deactivated:
                counts[name] = stores.journal.replay(partner, webhook=name, since=since, until=until,
                                                     statuses=statuses, now=now.timestamp())  # fmt: skip
        details = {"since": since, "until": until, "includeDelivered": include_delivered}
        events = [journal.event(Event.WEBHOOK_REPLAYED, partner, {"name": name, "count": count, **details})
                  for name, count in counts.items()]  # fmt: skip
        journal.record([], events, now=now)
    return Replay(partner, since, until, counts, deactivated)


def _utc(moment: datetime) -> datetime:
    return (moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)).astimezone(UTC)
