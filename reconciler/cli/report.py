"""``partnerctl report``: the compliance report (DESIGN §12) as Markdown, CSV, JSON or printable HTML."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from reconciler import clock
from reconciler.cli.options import common_options, settings_from
from reconciler.cli.wiring import reconciler
from reconciler.engine.report_formats import FORMATS, broken, render
from reconciler.errors import ReconcilerError, UsageError

__all__ = ["report"]


@click.command()
@click.option("--tenant", help="Only this tenant's partners (default: every tenant).")
@click.option("--format", "form", type=click.Choice(FORMATS),
              help="markdown (default; json with --output json), csv, json or html (printable, self-contained).")
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), help="Write the report to FILE, not stdout.")
@common_options
@click.pass_context
def report(ctx: click.Context, /, tenant: str | None, form: str | None, out: Path | None, **given: Any) -> None:
    """Compliance evidence per partner: approvals with their policy documents, scopes with classification and last
    use, credential method, age and rotations, access review, webhook deliveries of the last 30 days, last
    successful sync; and whether the audit chain verifies. Exit 1 if it does not (the report still prints, and
    says so at the top).

    \b
    Examples:
      partnerctl report --tenant ministry-social-affairs --format html --out msa-2026-q4.html
      partnerctl report --format csv > partners.csv
    """
    settings = settings_from(ctx, given)
    form = form or ("json" if settings.output == "json" else "markdown")
    with reconciler(settings) as engine:
        try:
            revision: str | None = engine.source.revision(settings.ref).sha if engine.source is not None else None
        except ReconcilerError:  # no repository here: the report names what was applied instead
            revision = None
        from reconciler.engine.report import build_report

        document = build_report(engine.stores, revision=revision, now=clock.now(), tenant=tenant)
    text = render(document, form)
    if out is not None:
        try:
            out.write_text(text, encoding="utf-8")
        except OSError as error:
            raise UsageError(f"--out {out}: cannot write the report ({error.strerror})") from error
        click.echo(f"report written to {out} ({len(document['partners'])} partners, {form})", err=True)
    else:
        click.echo(text, nl=not text.endswith("\n"))
    if not document["auditHead"]["verified"]:
        click.echo(f"error: the audit chain does not verify: {broken(document)}", err=True)
        ctx.exit(1)


