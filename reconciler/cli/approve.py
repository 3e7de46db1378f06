"""``partnerctl approve``: a Tenant Admin's signed approval of a branch, as a merge commit (git mode)."""

from __future__ import annotations

import sys
from datetime import UTC
from pathlib import Path
from typing import Any

import click

from reconciler import clock
from reconciler.cli.options import common_options, settings_from
from reconciler.errors import UsageError
from reconciler.manifests.loader import YamlProblem, load_document
from reconciler.manifests.models import TenantPolicy
from reconciler.manifests.validation import Validator


@click.command()
@click.argument("branch")
@click.option("--policy-document", required=True, help="ID of the legal or policy document this approval rests on.")
@click.option("--into", "target", help="Branch to merge into (default: the checked-out branch).")
@click.option("--signing-key", type=click.Path(dir_okay=False, path_type=Path),
              help="SSH private key that signs (default: git config user.signingkey).")  # fmt: skip
@click.option("--approver", help="Your approver e-mail for Approved-by (default: git config user.email).")
@click.option("--yes", "-y", is_flag=True, help="Do not ask for confirmation.")
@common_options
@click.pass_context
def approve(
    ctx: click.Context,
    /,
    branch: str,
    policy_document: str,
    target: str | None,
    signing_key: Path | None,
    approver: str | None,
    yes: bool,
    **given: Any,
) -> None:
    """Merge BRANCH with an SSH-signed merge commit carrying Approved-by and Policy-Document.

    Shows the manifest files the merge approves and their validation first.

    \b
    Example:
      partnerctl approve onboard-acme-bank --policy-document DPA-2026-031
    """
    from reconciler.backends.git import GitSource

    settings = settings_from(ctx, given)
    source = GitSource(settings.repo, home=Path(settings.home))
    if source.repo.bare:
        raise UsageError("approve works in a checkout of the partner repository")
    target = target or source.current_branch()
    key = str(signing_key) if signing_key else source.config("user.signingkey")
    email = approver or source.config("user.email")
    if not key:
        raise UsageError("no signing key: pass --signing-key ~/.ssh/id_ed25519 or set git config user.signingkey")
    if not email:
        raise UsageError("no approver e-mail: pass --approver or set git config user.email")

    base, tip = source.revision(target), source.revision(branch)
    changed = source.changed_manifests(target, branch)
    if not changed:
        raise UsageError(f"{branch} changes no partner or policy file against {target}; nothing to approve")
    click.echo(f"Approving {branch} into {target} ({base.sha[:12]}..{tip.sha[:12]}) as {email}, "
               f"policy document {policy_document}. This approves:")  # fmt: skip
    for status, path in changed:
        click.echo(f"  {status} {path}")
    validator = Validator(tip, today=clock.now().date(), allow_loopback_webhooks=settings.dev_allow_loopback_webhooks)
    report = validator.validate([path for status, path in changed if status != "D" and path.startswith("partners/")])
    for violation in report.violations:
        click.echo(f"  {violation.file}:{violation.line}: {violation.code} {violation.message}")
    if not report.valid:
        raise UsageError("the branch has violations (above); fix them before approving")
    if not yes:
        if not sys.stdin.isatty():
            raise UsageError("not a terminal: confirm with --yes")
        click.confirm("Sign and merge?", abort=True)

    message = (
        f"Approve {branch} into {target}\n\n"
        + "".join(f"{status} {path}\n" for status, path in changed)
        + f"\nApproved-by: {email}\nPolicy-Document: {policy_document}\n"
    )
    merged = source.signed_merge(target, branch, key=key, message=message)
    click.echo(
        f"Approved: signed merge commit {merged[:12]} on {target} at {clock.now().astimezone(UTC):%Y-%m-%d %H:%M}Z"
    )


@click.command()
@click.option("--base", default="origin/main", show_default=True, help="The branch the change will merge into.")
@common_options
@click.pass_context
def approvers(ctx: click.Context, /, base: str, **given: Any) -> None:
    """Who may approve the manifest changes between BASE and --ref (default HEAD).

    Partner files need a Tenant Admin of their tenant as approved on BASE; tenant policies and the
    scope catalog need a platform owner of the trust root.

    \b
    Example:
      partnerctl approvers --base origin/main
    """
    from reconciler.backends.git import GitSource

    settings = settings_from(ctx, given)
    source = GitSource(settings.repo, home=Path(settings.home))
    on_base = source.revision(base)
    lines = []
    for status, path in source.changed_manifests(base, settings.ref):
        if path.startswith("partners/"):
            tenant = path.split("/")[1]
            raw = on_base.read(f"policies/{tenant}.yaml")
            try:
                policy = TenantPolicy.model_validate(load_document(raw).data) if raw else None
            except (YamlProblem, ValueError):
                policy = None
            who = (
                ", ".join(
                    f"{a.name} <{a.email}>" + (f" @{a.github}" if a.github else "") for a in policy.spec.approvers
                )
                if policy
                else f"nobody yet: tenant {tenant} has no approved policy on {base}"
            )
            lines.append(f"{status} {path}: a Tenant Admin of {tenant}: {who}")
        else:
            lines.append(f"{status} {path}: a platform owner (trust root)")
    click.echo("\n".join(lines) if lines else f"No partner or policy file changes against {base}.")
