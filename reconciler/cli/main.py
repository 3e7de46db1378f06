"""``partnerctl``: the command group, global options, lazily loaded commands, and error handling.

Each command's module is imported only when that command runs, so ``--help``, ``--version`` and
``validate`` never load the Kubernetes client, hvac, uvicorn or the Prometheus client.
"""

from __future__ import annotations

import importlib
import os
import sys
from typing import Any

import click

from reconciler import clock
from reconciler.cli.options import Settings, base_settings, common_options
from reconciler.errors import ReconcilerError

__all__ = ["COMMANDS", "cli", "main"]

# name -> (module, attribute, the one-line help shown by --help without importing the module)
COMMANDS: dict[str, tuple[str, str, str]] = {
    "validate": ("reconciler.cli.validate", "validate",
                 "Check manifests against the JSON Schemas and the policy rules."),
    "plan": ("reconciler.cli.reconcile_commands", "plan",
             "Show the actions that would converge live state to the approved revision."),
    "apply": ("reconciler.cli.reconcile_commands", "apply",
              "Execute the plan, then the connectivity checks. Exit 1 if any action failed."),
    "status": ("reconciler.cli.status_commands", "status",
               "Phase/health, conditions, approval, credential age and last sync of partners."),
    "credentials": ("reconciler.cli.status_commands", "credentials",
                    "One-time delivery and forced rotation of partner credentials."),
    "audit": ("reconciler.cli.status_commands", "audit", "The tamper-evident audit log."),
    "approve": ("reconciler.cli.approve", "approve",
                "Merge BRANCH with an SSH-signed merge commit carrying Approved-by and Policy-Document."),
    "approvers": ("reconciler.cli.approve", "approvers",
                  "Who may approve the manifest changes between BASE and --ref (default HEAD)."),
    "run": ("reconciler.cli.reconcile_commands", "run",
            "The reconcile loop: fetch, plan, apply, run due checks and rotations; the dispatcher alongside."),
    "gateway": ("reconciler.cli.gateway_commands", "gateway",
                "The partner gateway: OAuth2 tokens, the handshake, scope enforcement."),
    "events": ("reconciler.cli.events_commands", "events", "Hand platform events to the webhook dispatcher."),
    "dispatch": ("reconciler.cli.events_commands", "dispatch", "Run the webhook delivery worker."),
    "webhooks": ("reconciler.cli.webhooks_commands", "webhooks",
                 "Webhook operations: the delivery log, replay, signing-secret rotation."),
    "secrets": ("reconciler.cli.secrets_commands", "secrets_group", "Administration of the secret store."),
    "db": ("reconciler.cli.database_commands", "db", "The PostgreSQL schema."),
    "state": ("reconciler.cli.database_commands", "state_group", "Moving an installation's live state."),
    "report": ("reconciler.cli.report", "report",
               "Compliance evidence per partner (Markdown, CSV, JSON, HTML); exit 1 if the audit chain fails."),
    "console": ("reconciler.cli.console_commands", "console",
                "The read-only web console: partners at a glance, pending changes, the report."),
    "demo": ("reconciler.cli.validate", "demo",
             "A narrated tour of onboarding a partner, on the embedded defaults, in a temporary folder."),
}  # fmt: skip


class LazyGroup(click.Group):
    """A group whose commands are imported on first use; ``--help`` lists them from :data:`COMMANDS`."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return list(COMMANDS)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name not in COMMANDS:
            return None
        module, attribute, _ = COMMANDS[cmd_name]
        command: click.Command = getattr(importlib.import_module(module), attribute)
        return command

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        limit = formatter.width - 6 - max(len(name) for name in COMMANDS)
        rows = [(name, _shorten(summary, limit)) for name, (_, _, summary) in COMMANDS.items()]
        with formatter.section("Commands"):
            formatter.write_dl(rows)


def _shorten(text: str, limit: int) -> str:
    """``text`` cut at a word boundary to fit ``limit`` characters, as click shortens command help."""
    if len(text) <= limit:
        return text
    return text[: max(0, limit - 3)].rsplit(" ", 1)[0].rstrip(",;:") + "..."


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
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
    clock.now()  # a bad PARTNERCTL_NOW is a usage error before anything runs
    ctx.call_on_close(lambda: _warn_dev_flags(ctx.obj))


def _warn_dev_flags(settings: Settings) -> None:
    """DESIGN §11: the loopback flag warns on every run (stderr, so JSON on stdout stays clean)."""
    if settings.dev_allow_loopback_webhooks:
        click.echo(
            "warning: --dev-allow-loopback-webhooks: http webhooks on loopback are allowed (never in production)",
            err=True,
        )


def main() -> None:
    """Console entry point: user mistakes become a message and an exit code, never a traceback.

    Log records (a bug's traceback among them) go to standard error through logging's default handler;
    standard output is for results only."""
    # We use no pydantic plugin; not looking for any spares every start the scan of installed packages.
    os.environ.setdefault("PYDANTIC_DISABLE_PLUGINS", "__all__")
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
    except KeyboardInterrupt:
        click.echo("Interrupted.", err=True)
        sys.exit(130)
