"""``partnerctl events publish``, ``partnerctl events token`` and ``partnerctl dispatch``."""

from __future__ import annotations

import json
import secrets
import sys
from pathlib import Path
from typing import Any

import click

from reconciler import clock
from reconciler.backends import open_secrets, open_state
from reconciler.cli import output
from reconciler.cli.options import Settings, common_options, settings_from
from reconciler.cli.wiring import parse_duration
from reconciler.credentials import keyed_hash
from reconciler.errors import UsageError
from reconciler.webhooks.dispatcher import DEFAULT_SCHEDULE, Dispatcher, parse_schedule
from reconciler.webhooks.events import PLATFORM_TOKEN_HASH, PLATFORM_TOKEN_KEY, publish


@click.group()
def events() -> None:
    """Hand platform events to the webhook dispatcher."""


@events.command(name="publish")
@click.option("--type", "event_type", required=True, help="Event type from the scope catalog.")
@click.option("--data", help="The event's fields as a JSON object.")
@click.option("--file", "file", type=click.File("r"), help="Read the JSON object from a file ('-' for stdin).")
@common_options
@click.pass_context
def publish_command(ctx: click.Context, /, event_type: str, data: str | None, file: Any, **given: Any) -> None:
    """Store an event and one delivery per subscribed webhook; the dispatcher sends them.

    \b
    Example:
      partnerctl events publish --type payment.status.changed \\
        --data '{"payment_id": "p-1", "status": "paid", "amount": 1200, "beneficiary_name": "A. B."}'
    """
    settings = settings_from(ctx, given)
    if data is not None and file is not None:
        raise UsageError("give --data or --file, not both")
    text = data if data is not None else (file.read() if file is not None else sys.stdin.read())
    try:
        payload = json.loads(text)
    except ValueError as error:
        raise UsageError(f"event data is not valid JSON: {error}") from None
    state = open_state(settings.state, home=Path(settings.home))
    try:
        event, count = publish(state, event_type, payload, now=clock.now())
    finally:
        state.close()
    if settings.output == "json":
        output.emit_json({"event": event.id, "type": event.type, "deliveries": count})
    else:
        click.echo(f"Accepted {event.id} ({event.type}): {count} delivery(ies) queued")


@events.command(name="token")
@common_options
@click.pass_context
def token_command(ctx: click.Context, /, **given: Any) -> None:
    """Issue (or replace) the platform-service token for POST /internal/events on the gateway. Shown once."""
    settings = settings_from(ctx, given)
    store = open_secrets(settings.secrets, home=Path(settings.home))
    try:
        token = "scp_pt_" + secrets.token_urlsafe(32)
        key = secrets.token_bytes(32)
        store.replace_sealed(PLATFORM_TOKEN_KEY, key)
        store.replace_sealed(PLATFORM_TOKEN_HASH, keyed_hash(key, token).encode())
    finally:
        store.close()
    click.echo(token)


def dispatcher(settings: Settings, schedule: str | None) -> Dispatcher:
    home = Path(settings.home)
    home.mkdir(parents=True, exist_ok=True, mode=0o700)
    try:
        steps = parse_schedule(schedule) if schedule else DEFAULT_SCHEDULE
    except ValueError as error:
        raise UsageError(f"--schedule: {error}") from None
    return Dispatcher(
        state=open_state(settings.state, home=home),
        secrets=open_secrets(settings.secrets, home=home),
        home=home,
        allow_loopback=settings.dev_allow_loopback_webhooks,
        schedule=steps,
    )


@click.command()
@click.option("--once", is_flag=True, help="Send what is due now, then exit.")
@click.option("--interval", default="2s", show_default=True, help="Pause when nothing is due (e.g. 2, 2s, 1m).")
@click.option(
    "--schedule", help="Retry delays in seconds, comma-separated (default 0,5,300,1800,7200,18000,36000,36000)."
)
@common_options
@click.pass_context
def dispatch(ctx: click.Context, /, once: bool, interval: str, schedule: str | None, **given: Any) -> None:
    """Run the webhook delivery worker.

    \b
    Example:
      partnerctl dispatch --once
    """
    settings = settings_from(ctx, given)
    dispatcher(settings, schedule).run(once=once, interval=parse_duration(interval).total_seconds())
