"""Options shared by every command; accepted before or after the command name."""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import click

F = TypeVar("F", bound=Callable[..., Any])

OUTPUT_FORMATS = ("text", "json", "github")


@dataclass
class Settings:
    """The resolved global options of one invocation."""

    repo: str = "."
    ref: str = "HEAD"
    state: str | None = None
    secrets: str | None = None
    approval: str = "git"
    trust_root: Path | None = None
    output: str = "text"
    home: Path = Path(".partnerctl")
    dev_allow_loopback_webhooks: bool = False
    github_repo: str | None = None
    notify: tuple[str, ...] = ()
    notify_interval: str = "1h"


_OPTIONS: list[Callable[[F], F]] = [
    click.option("--repo", help="Partner repository: a path or git URL (env PARTNERCTL_REPO; default: .)."),
    click.option("--ref", help="Git ref to reconcile (default: HEAD)."),
    click.option("--state", help="State store URL (env PARTNERCTL_STATE; default: sqlite under --home)."),
    click.option("--secrets", help="Secret store URL (env PARTNERCTL_SECRETS; default: local store under --home)."),
    click.option("--approval", type=click.Choice(["git", "github", "none"]), help="Approval evidence mode."),
    click.option("--github-repo", help="OWNER/NAME for --approval github (env GITHUB_REPOSITORY)."),
    click.option("--trust-root", type=click.Path(dir_okay=False, path_type=Path), help="TrustRoot file (out of band)."),
    click.option("--output", "-o", type=click.Choice(OUTPUT_FORMATS), help="Output format (default: text)."),
    click.option(
        "--home", type=click.Path(file_okay=False, path_type=Path), help="Installation folder (env PARTNERCTL_HOME)."
    ),
    click.option(
        "--dev-allow-loopback-webhooks",
        is_flag=True,
        default=None,
        help="Allow http webhooks on loopback, for local trials (env PARTNERCTL_DEV_ALLOW_LOOPBACK=1).",
    ),
    click.option(
        "--notify",
        multiple=True,
        metavar="URL",
        help="Post alerts to URL, Slack-compatible; URL?format=cloudevents for CloudEvents 1.0 (repeatable; "
        "env PARTNERCTL_NOTIFY, space-separated).",
    ),
    click.option("--notify-interval", help="Send the same alert at most once per this long (default: 1h)."),
]


def common_options(function: F) -> F:
    for option in reversed(_OPTIONS):
        function = option(function)
    return function


def settings_from(ctx: click.Context, given: dict[str, Any]) -> Settings:
    """Merge options given to this command over those given to the group and the environment."""
    settings: Settings = ctx.find_object(Settings) or Settings()
    for name, value in given.items():
        if value is not None and value != ():  # () is a repeatable option not given
            setattr(settings, name, value)
    return settings


def base_settings(given: dict[str, Any]) -> Settings:
    settings = Settings(
        home=Path(os.environ.get("PARTNERCTL_HOME") or ".partnerctl"),
        repo=os.environ.get("PARTNERCTL_REPO") or ".",
        state=os.environ.get("PARTNERCTL_STATE") or None,
        secrets=os.environ.get("PARTNERCTL_SECRETS") or None,
        dev_allow_loopback_webhooks=os.environ.get("PARTNERCTL_DEV_ALLOW_LOOPBACK", "") in ("1", "true", "yes"),
        notify=tuple(os.environ.get("PARTNERCTL_NOTIFY", "").split()),
    )
    for name, value in given.items():
        if value is not None and value != ():
            setattr(settings, name, value)
    return settings
