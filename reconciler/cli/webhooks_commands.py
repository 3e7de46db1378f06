"""``partnerctl webhooks``: a partner's delivery log, replaying a window, rotating a signing secret (DESIGN §8, §11)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import click

from reconciler import clock
from reconciler.cli import output, wiring
from reconciler.cli.options import common_options, settings_from
from reconciler.engine.journal import Journal
from reconciler.engine.reconciler import LOCK_TIMEOUT, Options
from reconciler.errors import NotFound, UsageError
from reconciler.webhooks import operations
from reconciler.webhooks.operations import attempt_json, window

__all__ = ["webhooks"]

STATUSES = ("delivered", "failed", "held")


@click.group()
def webhooks() -> None:
    """Webhook operations: the delivery log, replay, signing-secret rotation."""


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
        output.emit_json({"deliveries": [attempt_json(attempt) for attempt in found]})
        return
    if not found:
        click.echo(f"No delivery attempts of {key}" + (f" since {start}" if start else "") + ".")
        return
    for attempt in found:
        outcome = str(attempt.http_status) if attempt.http_status is not None else (attempt.error or "-")
        latency = f"{attempt.latency_ms} ms" if attempt.latency_ms is not None else "-"
        click.echo(f"{attempt.time}  {attempt.webhook:<20} {attempt.message_id:<36} {attempt.event_type:<28} "
                   f"#{attempt.attempt:<2} {attempt.status:<9} {outcome:<12} {latency}")  # fmt: skip


@webhooks.command()
@click.argument("partner")
@click.option("--webhook", help="Only this webhook (default: every webhook of the partner that is not deactivated).")
@click.option("--since", required=True, help="Events received from this time: ISO 8601 or a duration back (1h, 2d).")
@click.option("--until", help="Events received before this time (default: now): ISO 8601 or a duration back.")
@click.option("--include-delivered", is_flag=True, help="Also what was delivered (default: failed and held only).")
@common_options
@click.pass_context
def replay(
    ctx: click.Context, /, partner: str, webhook: str | None, since: str, until: str | None, include_delivered: bool,
    **given: Any,
) -> None:  # fmt: skip
    """Send again the failed and held deliveries of TENANT/PARTNER's events received in a window.

    Each goes out with its original webhook-id (receivers de-duplicate on it), shaped at send time
    against the partner's current scopes: a field the partner has lost since is not sent. The
    dispatcher sends replayed deliveries after live ones. Audited as webhook.replayed.

    \b
    Example (a receiver that was down last night):
      partnerctl webhooks replay ministry-social-affairs/acme-bank --since 2026-12-01T22:00Z --until 2026-12-02T06:00Z
    """
    settings = settings_from(ctx, given)
    key = wiring.check_partner_key(partner)
    now = clock.now()
    start, end = window(_moment(since, "--since"), _moment(until, "--until") if until else None, now=now)
    with wiring.stores(settings) as stores:
        done = operations.replay(stores, Journal(stores, actor=Options().actor), key, since=start, until=end,
                                 webhook=webhook, include_delivered=include_delivered, now=now,
                                 lock_timeout=LOCK_TIMEOUT)  # fmt: skip
    if settings.output == "json":
        output.emit_json({"partner": done.partner, "since": done.since, "until": done.until, "replayed": done.count,
                          "webhooks": done.counts, "deactivated": done.deactivated})  # fmt: skip
        return
    each = ", ".join(f"{name}: {count}" for name, count in done.counts.items())
    click.echo(f"Replaying {done.count} deliveries of {key} ({each}) for events received from {done.since} "
               f"until {done.until}; partnerctl dispatch sends them after live traffic.")  # fmt: skip
    for name in done.deactivated:
        click.echo(f"Left out {name}: it is deactivated. Fix the endpoint; the next connectivity check reactivates "
                   "it and sends its held deliveries.")  # fmt: skip


def _since(text: str) -> str:
    """``--since`` as the log's ISO 8601 UTC."""
    return _moment(text, "--since").isoformat()


def _moment(text: str, option: str) -> datetime:
    """An ISO 8601 time, or a duration back from now, in UTC."""
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        try:
            moment = clock.now() - wiring.parse_duration(text)
        except click.BadParameter as error:
            raise UsageError(
                f"{option} {text!r}: an ISO 8601 time (2026-12-01T08:00Z) or a duration (24h, 7d)"
            ) from error
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC)


@webhooks.command(name="rotate-secret")
@click.argument("partner")
@click.argument("name")
@common_options
@click.pass_context
def rotate_secret(ctx: click.Context, /, partner: str, name: str, **given: Any) -> None:
    """Give webhook NAME of TENANT/PARTNER a new signing secret, delivered once like the first.

    Until the tenant's overlapDays pass, every message carries both signatures (webhook-signature:
    v1,<new> v1,<old>), so the receiver may switch to the new secret at any moment; then the old
    one is destroyed. Rotating again during the overlap destroys the oldest at once. Audited as
    webhook.secret_rotated.

    \b
    Example:
      partnerctl webhooks rotate-secret ministry-social-affairs/acme-bank payment-events
    """
    settings = settings_from(ctx, given)
    key = wiring.check_partner_key(partner)
    with wiring.reconciler(settings) as engine:
        until = engine.rotate_webhook_secret(key, name)
    if settings.output == "json":
        output.emit_json({"partner": key, "webhook": name, "overlapUntil": until.isoformat()})
        return
    click.echo(f"Rotated the signing secret of webhook {name} of {key}. Until {until.isoformat()} every message is "
               "signed with both the new and the old secret; then only with the new one.")  # fmt: skip
    click.echo(f"Deliver the new secret with: partnerctl credentials deliver {key}")
