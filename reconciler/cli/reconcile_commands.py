"""``partnerctl plan`` and ``partnerctl apply``."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import click

if TYPE_CHECKING:
    from reconciler.engine.loop import Leadership

from reconciler.cli import output
from reconciler.cli.options import Settings, common_options, settings_from
from reconciler.cli.wiring import check_listen_address, dispatcher, parse_duration, reconciler
from reconciler.errors import UsageError

_check_interval = click.option(
    "--check-interval",
    default="5m",
    show_default=True,
    help="Re-check connectivity of ACTIVE/HEALTHY partners after this long (e.g. 300, 5m).",
)


@click.command()
@click.option("--detailed-exitcode", is_flag=True, help="Exit 2 when actions are pending, 0 when none.")
@_check_interval
@common_options
@click.pass_context
def plan(ctx: click.Context, /, detailed_exitcode: bool, check_interval: str, **given: Any) -> None:
    """Show the actions that would converge live state to the approved revision.

    \b
    Examples:
      partnerctl --approval none plan
      partnerctl plan --output json --detailed-exitcode
    """
    settings = settings_from(ctx, given)
    with reconciler(settings, check_interval=parse_duration(check_interval), reads_repository=True) as engine:
        outcome = engine.plan()
    if settings.output == "json":
        output.emit_json(outcome.plan.to_json())
    else:
        click.echo(output.plan_text(outcome.plan))
    ctx.exit(2 if detailed_exitcode and outcome.plan.actions else 0)


@click.command()
@_check_interval
@common_options
@click.pass_context
def apply(ctx: click.Context, /, check_interval: str, **given: Any) -> None:
    """Execute the plan, then the connectivity checks. Exit 1 if any action failed.

    \b
    Examples:
      partnerctl --approval none apply
      partnerctl apply --output json
    """
    settings = settings_from(ctx, given)
    with reconciler(settings, check_interval=parse_duration(check_interval), reads_repository=True) as engine:
        outcome = engine.apply()
    if settings.output == "json":
        output.emit_json(outcome.to_json())
    else:
        click.echo(output.apply_text(outcome))
    ctx.exit(0 if outcome.ok else 1)


@click.command()
@click.option("--once", is_flag=True, help="One reconcile (and one dispatch pass), then exit.")
@click.option("--interval", default="60", show_default=True, help="Seconds between reconciles (60, 30s, 5m).")
@click.option("--log-format", type=click.Choice(["text", "json"]), default="text", show_default=True,
              help="json: one object per line with time, level, msg, partner and revision.")  # fmt: skip
@click.option("--metrics-port", type=click.IntRange(0, 65535),
              help="Serve /metrics, /healthz and /readyz on this port.")  # fmt: skip
@click.option("--leader-elect", is_flag=True,
              help="Apply only while leader: a coordination.k8s.io/v1 Lease, or with --state postgresql://… an "
                   "advisory lock in the database.")  # fmt: skip
@click.option("--lease-name", default="partnerctl-leader", show_default=True, help="The Lease's name.")
@click.option("--lease-namespace", help="The Lease's namespace (default: that of --state kubernetes://NS, the pod's).")
@click.option("--lease-duration", default="15", show_default=True,
              help="Seconds a leader's Lease lasts without renewal; a standby takes over after it.")  # fmt: skip
@click.option(
    "--metrics-host", default="127.0.0.1", show_default=True, help="Address for --metrics-port (0.0.0.0 in a pod)."
)
@_check_interval
@common_options
@click.pass_context
def run(
    ctx: click.Context,
    /,
    once: bool,
    interval: str,
    metrics_port: int | None,
    metrics_host: str,
    log_format: str,
    check_interval: str,
    leader_elect: bool,
    lease_name: str,
    lease_namespace: str | None,
    lease_duration: str,
    **given: Any,
) -> None:
    """The reconcile loop: fetch, plan, apply, run due checks and rotations; the dispatcher alongside.

    SIGTERM finishes the current action and exits 0. Errors back off exponentially (up to 10 min).

    \b
    Example:
      partnerctl --trust-root /etc/partnerctl/trust-root.yaml --repo https://git.example/partners.git run
    """
    from reconciler.engine.loop import reporter, run_loop

    settings = settings_from(ctx, given)
    seconds = parse_duration(interval).total_seconds()
    metrics = None
    if metrics_port is not None:
        from reconciler.engine.metrics import Metrics

        check_listen_address(metrics_host, metrics_port, "--metrics-host")
        metrics = Metrics()
    server = metrics.serve(metrics_port, metrics_host) if metrics is not None and metrics_port is not None else None
    try:
        with reconciler(settings, check_interval=parse_duration(check_interval), reads_repository=True,
                        long_running=True) as engine:  # fmt: skip
            report = reporter(json_lines=log_format == "json", echo=lambda line: click.echo(line, err=True))
            leadership = elector(settings, lease_name, lease_namespace, lease_duration) if leader_elect else None
            worker = dispatcher(settings, None)
            if metrics is not None:
                worker.on_results = metrics.observe_deliveries
            try:
                code = run_loop(engine, worker, interval=seconds, once=once, metrics=metrics, report=report,
                                leadership=leadership)  # fmt: skip
            finally:
                worker.stores.close()
    finally:
        if server is not None:
            server.shutdown()
    ctx.exit(code)


def elector(settings: Settings, name: str, namespace: str | None, duration: str) -> Leadership:
    """With PostgreSQL state, an advisory lock in that database (no cluster needed); else a Lease."""
    from urllib.parse import urlsplit

    seconds = parse_duration(duration).total_seconds()
    if seconds < 1:
        raise UsageError(f"--lease-duration {duration}: at least one second")
    state = urlsplit(settings.state or "")
    if state.scheme in ("postgresql", "postgres"):
        from reconciler.backends.postgresql.database import Database
        from reconciler.backends.postgresql.leader import AdvisoryLockElector

        return AdvisoryLockElector(Database(settings.state or "", max_size=1), name=name, lease_duration=seconds)

    from reconciler.backends.kubernetes.api import current_namespace
    from reconciler.backends.kubernetes.leader import LeaseElector

    namespace = namespace or (state.netloc if state.scheme == "kubernetes" and state.netloc else current_namespace())
    return LeaseElector(namespace=namespace, name=name, lease_duration=seconds)
