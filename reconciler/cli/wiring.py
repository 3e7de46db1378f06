"""Building a :class:`Reconciler` from the command line's settings."""

from __future__ import annotations

import os
import re
from datetime import timedelta
from pathlib import Path

import click

from reconciler.approval.gate import ApprovalGate, NoApproval
from reconciler.approval.git import GitApproval, load_trust_root
from reconciler.approval.github import GitHubApproval, client_from_environment
from reconciler.cli.options import Settings
from reconciler.engine.reconciler import Config, Reconciler
from reconciler.errors import UsageError
from reconciler.manifests.loader import YamlProblem
from reconciler.manifests.models import TrustRoot


def approval_gate(settings: Settings) -> ApprovalGate:
    if settings.approval == "none":
        return NoApproval()
    if settings.approval == "git":
        root, digest = trust_root(settings)
        return GitApproval(root, digest=digest)
    root, digest = trust_root(settings)
    return GitHubApproval(root, digest=digest, client=client_from_environment(settings.github_repo))


def trust_root(settings: Settings) -> tuple[TrustRoot, str]:
    path = settings.trust_root or (Path(os.environ["PARTNERCTL_TRUST_ROOT"]) if os.environ.get("PARTNERCTL_TRUST_ROOT")
                                   else None)  # fmt: skip
    if path is None:
        raise UsageError(
            "--approval git needs --trust-root FILE (env PARTNERCTL_TRUST_ROOT): the platform owners who approve "
            "tenant policies, kept outside the reconciled repository. For a trial without verification: "
            "--approval none"
        )
    try:
        root, digest = load_trust_root(path)
    except OSError as error:
        raise UsageError(f"--trust-root {path}: {error.strerror}") from None
    except (YamlProblem, ValueError) as error:
        raise UsageError(f"--trust-root {path} is not a valid TrustRoot: {str(error).splitlines()[0]}") from None
    return root, digest


def reconciler(
    settings: Settings, *, check_interval: timedelta | None = None, reads_repository: bool = False
) -> Reconciler:
    """The engine for a command; ``reads_repository`` for those that plan (they need an approval gate)."""
    gate = approval_gate(settings) if reads_repository else None
    warning = gate.warning() if gate is not None else None
    if warning:
        click.echo(warning, err=True)
    config = Config(
        repo=settings.repo,
        ref=settings.ref,
        home=Path(settings.home),
        gate=gate,
        state_url=settings.state,
        secrets_url=settings.secrets,
        allow_loopback_webhooks=settings.dev_allow_loopback_webhooks,
    )
    if check_interval is not None:
        config.check_interval = check_interval
    return Reconciler(config)


_DURATION = re.compile(r"^(\d+)(s|m|h|d)?$")


def parse_duration(text: str) -> timedelta:
    """``90``, ``30s``, ``5m``, ``2h``, ``1d``: a number of seconds or with a unit."""
    match = _DURATION.match(text.strip())
    if not match:
        raise click.BadParameter(f"{text!r} is not a duration; use e.g. 300, 30s, 5m, 2h")
    value, unit = int(match.group(1)), match.group(2) or "s"
    return timedelta(seconds=value * {"s": 1, "m": 60, "h": 3600, "d": 86400}[unit])


def check_partner_key(key: str) -> str:
    if not re.fullmatch(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?/[a-z0-9]([-a-z0-9]*[a-z0-9])?", key):
        raise UsageError(f"{key!r} is not TENANT/PARTNER (e.g. ministry-social-affairs/acme-bank)")
    return key
