"""``partnerctl``: the command group, global options and error handling."""

from __future__ import annotations

import sys
from typing import Any

import click

from reconciler.cli import approve as approve_command
from reconciler.cli import events_commands, gateway_commands, reconcile_commands, secrets_commands, status_commands
from reconciler.cli import validate as validate_command
from reconciler.cli.options import Settings, base_settings, common_options
from reconciler.errors import ReconcilerError


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@common_options
@click.version_option(package_name="partnerctl")
@click.pass_context
def cli(ctx: click.Context, /, **given: Any) -> None:
    """Partner onboarding as code: validate, plan and apply partner manifests.

    \b
    Examples:
      partnerctl validate                       # the whole repository
      partnerctl validate partners/msa/acme.yaml --output json
    """
    ctx.obj = base_settings(given)
    ctx.ensure_object(Settings)
    ctx.call_on_close(lambda: _warn_dev_flags(ctx.obj))


def _warn_dev_flags(settings: Settings) -> None:
    """DESIGN §11: the loopback flag warns on every run (stderr, so JSON on stdout stays clean)."""
    if settings.dev_allow_loopback_webhooks:
        click.echo(
            "warning: --dev-allow-loopback-webhooks: http webhooks on loopback are allowed (never in production)",
            err=True,
        )


cli.add_command(validate_command.validate)
cli.add_command(validate_command.demo)
cli.add_command(reconcile_commands.plan)
cli.add_command(reconcile_commands.apply)
cli.add_command(reconcile_commands.run)
cli.add_command(status_commands.status)
cli.add_command(status_commands.credentials)
cli.add_command(status_commands.audit)
cli.add_command(approve_command.approve)
cli.add_command(approve_command.approvers)
cli.add_command(gateway_commands.gateway)
cli.add_command(events_commands.events)
cli.add_command(events_commands.dispatch)
cli.add_command(secrets_commands.secrets_group)


def main() -> None:
    """Console entry point: user mistakes become a message and an exit code, never a traceback."""
    try:
        # Without standalone mode click returns ctx.exit()'s code instead of exiting.
        result = cli.main(standalone_mode=False)
        sys.exit(result if isinstance(result, int) else 0)
    except click.exceptions.Exit as done:
        sys.exit(done.exit_code)
    except click.Abort:
        click.echo("Aborted.", err=True)
        sys.exit(1)
    except click.ClickException as problem:
        problem.show()
        sys.exit(problem.exit_code)
    except ReconcilerError as problem:
        click.echo(f"partnerctl: {problem}", err=True)
        sys.exit(problem.exit_code)
    except BrokenPipeError:
        sys.exit(1)
