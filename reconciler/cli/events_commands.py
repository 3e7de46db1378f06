"""``partnerctl events publish``, ``partnerctl events token`` and ``partnerctl dispatch``."""

from __future__ import annotations

import json
import signal
import sys
import threading
from types import FrameType
from typing import Any

import click

from reconciler import clock
from reconciler.cli import output, wiring
from reconciler.cli.options import common_options, settings_from
from reconciler.errors import ReconcilerError, UsageError


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
        raise UsageError(f"event data is not valid JSON: {error}") from error
    from reconciler.webhooks.events import publish

    with wiring.stores(settings) as stores:
        event, count = publish(stores, event_type, payload, now=clock.now())
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
    from reconciler.webhooks.events import PLATFORM_TOKEN

    with wiring.stores(settings) as stores:
        token = PLATFORM_TOKEN.issue(stores.secrets)
    click.echo(token)


@click.command()
@click.option("--once", is_flag=True, help="Send what is due now, then exit.")
@click.option("--interval", default="2s", show_default=True, help="Pause when nothing is due (e.g. 2, 2s, 1m).")
@click.option(
    "--schedule", help="Retry delays in seconds, comma-separated (default 0,5,300,1800,7200,18000,36000,36000)."
)
@click.option("--metrics-port", type=click.IntRange(0, 65535),
              help="Serve /metrics (deliveries by result), /healthz and /readyz on this port.")  # fmt: skip
@click.option("--metrics-host", default="127.0.0.1", show_default=True, help="Address for --metrics-port.")
@common_options
@click.pass_context
def dispatch(
    ctx: click.Context,
    /,
    once: bool,
    interval: str,
    schedule: str | None,
    metrics_port: int | None,
    metrics_host: str,
    **given: Any,
) -> None:
    """Run the webhook delivery worker.

    Any number of workers may run on one installation: each claims what it sends. SIGTERM finishes the
    current pass and exits 0; a failed pass (the store unreachable) is reported and retried.

    \b
    Example:
      partnerctl dispatch --once
    """
    settings = settings_from(ctx, given)
    seconds = wiring.parse_duration(interval).total_seconds()
    if metrics_port is not None:
        wiring.check_listen_address(metrics_host, metrics_port, "--metrics-host")
    worker = wiring.dispatcher(settings, schedule)
    stop = threading.Event()
    metrics, server = None, None
    if metrics_port is not None:
        from reconciler.engine.metrics import Metrics

        metrics = Metrics()
        worker.on_results = metrics.observe_deliveries
        server = metrics.serve(metrics_port, metrics_host)

    def on_signal(signum: int, frame: FrameType | None) -> None:
        click.echo(f"partnerctl dispatch: received {signal.Signals(signum).name}: finishing this pass", err=True)
        if metrics is not None:
            metrics.alive = False
        stop.set()

    def failed(error: ReconcilerError) -> None:
        if metrics is not None:
            metrics.ready = False  # not ready while its store is away
        click.echo(f"partnerctl dispatch: {error} (retrying in {seconds:g} s)", err=True)

    def passed(attempted: int) -> None:
        if metrics is not None:
            metrics.ready = True

    previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        worker.run(once=once, interval=seconds, stop=stop, on_error=None if once else failed, on_pass=passed)
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        if server is not None:
            server.shutdown()
        worker.stores.close()
