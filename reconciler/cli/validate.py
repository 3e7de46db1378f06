"""``partnerctl validate`` (schema and policy checks of working-tree files) and ``partnerctl demo``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from reconciler import clock
from reconciler.cli import output
from reconciler.cli.options import Settings, common_options, settings_from
from reconciler.errors import UsageError
from reconciler.manifests.validation import YAML_SUFFIXES, Report, Validator
from reconciler.manifests.worktree import WorkingTree


@click.command()
@click.argument("paths", nargs=-1, type=click.Path(path_type=Path))
@common_options
@click.pass_context
def validate(ctx: click.Context, /, paths: tuple[Path, ...], **given: Any) -> None:
    """Check manifests against the JSON Schemas and the policy rules.

    With no PATH, every manifest under partners/ and policies/ of --repo; relative PATHs are
    taken from the --repo folder, like `git -C`. Exit 0 when all are
    valid, 1 when there are violations, 2 on a usage error.

    \b
    Examples:
      partnerctl validate
      partnerctl validate partners/ministry-social-affairs/ --output json
      partnerctl --output github validate        # annotations in GitHub Actions
    """
    settings = settings_from(ctx, given)
    report = run_validation(settings, paths)
    if settings.output == "json":
        output.emit_json(report.to_json())
    elif settings.output == "github":
        click.echo(output.validation_github(report))
    else:
        click.echo(output.validation_text(report))
    ctx.exit(0 if report.valid else 1)


def run_validation(settings: Settings, paths: tuple[Path, ...]) -> Report:
    tree = WorkingTree(Path(settings.repo))
    validator = Validator(tree, today=clock.now().date(), allow_loopback_webhooks=settings.dev_allow_loopback_webhooks)
    if not paths:
        return validator.validate(tree.manifest_paths())
    inside: list[str] = []
    outside: list[tuple[str, bytes]] = []
    for given in paths:
        # Like `git -C`, relative paths are taken from the repository root.
        for file in _expand(tree.root / given):
            relative = tree.relative(file)
            if relative is not None:
                inside.append(relative)
            else:
                outside.append((str(file), file.read_bytes()))
    return validator.validate(inside, outside=outside)


def _expand(path: Path) -> list[Path]:
    if path.is_dir():
        return sorted(file for file in path.rglob("*") if file.is_file() and file.suffix in YAML_SUFFIXES)
    if path.is_file():
        return [path]
    raise UsageError(f"{path}: no such file or folder")


@click.command()
@common_options
@click.pass_context
def demo(ctx: click.Context, /, **given: Any) -> None:
    """A narrated tour of onboarding a partner, on the embedded defaults, in a temporary folder.

    Uses the example partner repository of --repo (default: this checkout): signed approvals, apply,
    one-time credential pickup, token, handshake, ACTIVE/HEALTHY, a refused out-of-scope request and
    a blocked unapproved change. Needs git and ssh-keygen; takes well under a minute.
    """
    from reconciler.cli.demo import run_demo

    settings = settings_from(ctx, given)
    run_demo(Path(settings.repo).resolve(), click.echo)
