"""``partnerctl webhooks deliveries``: the delivery log of a partner's webhooks (DESIGN §8, §11)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import click

from reconciler import clock
from reconciler.cli import output, wiring
from reconciler.cli.options import common_options, settings_from
from reconciler.errors import NotFound, UsageError
from reconciler.stores.records import DeliveryAttempt

__all__ = ["webhooks"]

STATUSES = ("delivered", "failed", "held")


@click.group()
def webhooks() -> None:
    """Webhook operations: the delivery log."""


@webhooks.command()
@click.argument("partner")
@click.option("--webhook", help="Only this webhook's deliveries.")
@click.option("--status", type=click.Choice(STATUSES), help="Only attempts with this outcome.")
@click.option("--since", help="From this time: ISO 8601 (2026-12-01T08:00Z) or a duration back from now (24h, 7d).")
@click.option("--limit", type=click.IntRange(1, 100_000), default=1000, show_default=True, help="At most this many.")
@common_options
@click.pass_context
def deliveries(
    ctx: click.Context, /, partner: str, webhook: str | None, status: str | None, since: str | None, limit: int,
    **given: Any,
) -> None:  # fmt: skip
    """The delivery log of TENANT/PARTNER, newest first: every attempt of the last 30 days.

    Each line is one attempt: the event id (its webhook-id), type, time, attempt number, outcome,
    HTTP status or error, and latency; nothing of the payload.

    \b
    Example:
      partnerctl webhooks deliveries ministry-social-affairs/acme-bank --status failed --since 24h
    """
    settings = settings_from(ctx, given)
    key = wiring.check_partner_key(partner)
    start = _since(since) if since else None
    with wiring.stores(settings) as stores:
        record = stores.partners.partner(key)
        if record is None:
            raise NotFound(f"unknown partner {key!r}; see partnerctl status for the list")
        if webhook is not None and webhook not in record.webhooks:
            raise NotFound(f"{key} has no webhook {webhook!r} (it has: {', '.join(sorted(record.webhooks)) or 'none'})")
        found = stores.journal.attempts(key, webhook=webhook, status=status, since=start, limit=limit)
    if settings.output == "json":
        output.emit_json({"deliveries": [_json(attempt) for attempt in found]})
        return
    if not found:
        click.echo(f"No delivery attempts of {key}" + (f" since {start}" if start else "") + ".")
        return
    for attempt in found:
        outcome = str(attempt.http_status) if attempt.http_status is not None else (attempt.error or "-")
        latency = f"{attempt.latency_ms} ms" if attempt.latency_ms is not None else "-"
        click.echo(f"{attempt.time}  {attempt.webhook:<20} {attempt.message_id:<36} {attempt.event_type:<28} "
                   f"#{attempt.attempt:<2} {attempt.status:<9} {outcome:<12} {latency}")  # fmt: skip


def _json(attempt: DeliveryAttempt) -> dict[str, Any]:
    return {"webhook": attempt.webhook, "eventId": attempt.message_id, "type": attempt.event_type,
            "time": attempt.time, "attempt": attempt.attempt, "status": attempt.status,
            "httpStatus": attempt.http_status, "error": attempt.error, "latencyMs": attempt.latency_ms}  # fmt: skip


def _since(text: str) -> str:
    """An ISO 8601 time, or a duration back from now, as the log's ISO 8601 UTC."""
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        try:
            moment = clock.now() - wiring.parse_duration(text)
        except click.BadParameter as error:
            raise UsageError(f"--since {text!r}: an ISO 8601 time (2026-12-01T08:00Z) or a duration (24h, 7d)") \
                from error
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC).isoformat()
