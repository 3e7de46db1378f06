"""Where the adapters meet the core: stores, repository, approval gate and senders built from the options.

This is the only module that hands backends (SQLite, Vault, Kubernetes, git, GitHub, httpx) to the
engine, the dispatcher and the gateway; each command asks it for the object it runs.
"""

from __future__ import annotations

import hashlib
import os
import re
import socket
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING

import click

from reconciler.approval.gate import ApprovalGate, NoApproval
from reconciler.cli.options import Settings
from reconciler.errors import ReconcilerError, UsageError
from reconciler.manifests.loader import YamlProblem, load_document
from reconciler.manifests.models import TrustRoot
from reconciler.stores import Stores

if TYPE_CHECKING:
    from reconciler.console.app import Console
    from reconciler.engine.reconciler import ApplyListener, Reconciler
    from reconciler.gateway.app import Gateway
    from reconciler.webhooks.dispatcher import Dispatcher

__all__ = [
    "approval_gate", "check_listen_address", "check_partner_key", "console", "dispatcher", "gateway", "parse_duration",
    "reconciler", "stores",
]  # fmt: skip

# A remote secret store (Vault) may answer repeated verifications from memory for this long; so a
# revocation reaches the gateway within it. The embedded store is always read directly.
SECRET_CACHE_SECONDS = 5.0
# A remote state store (Kubernetes) is asked whether records changed at most this often, so the
# gateway's request rate never reaches the API server; a suspension or narrowing applies within it.
STATE_CACHE_SECONDS = 2.0


def stores(settings: Settings, *, for_gateway: bool = False, long_running: bool = False) -> Stores:
    """The stores; ``long_running`` processes (the loop, the gateway) follow state changes with a watch."""
    from reconciler.backends import open_stores

    return open_stores(
        home=Path(settings.home),
        state=settings.state,
        secrets=settings.secrets,
        state_cache_seconds=STATE_CACHE_SECONDS if for_gateway else 0.0,
        secret_cache_seconds=SECRET_CACHE_SECONDS if for_gateway else 0.0,
        follow_changes=long_running or for_gateway,
    )


def approval_gate(settings: Settings) -> ApprovalGate:
    if settings.approval == "none":
        return NoApproval()
    root, digest = trust_root(settings)
    if settings.approval == "git":
        from reconciler.approval.git import GitApproval

        return GitApproval(root, digest=digest)
    from reconciler.approval.github import GitHubApproval
    from reconciler.backends.github import client_from_environment

    return GitHubApproval(root, digest=digest, client=client_from_environment(settings.github_repo))


def trust_root(settings: Settings) -> tuple[TrustRoot, str]:
    """The TrustRoot file named by --trust-root (or PARTNERCTL_TRUST_ROOT) and a digest of its content."""
    path = settings.trust_root or (Path(os.environ["PARTNERCTL_TRUST_ROOT"]) if os.environ.get("PARTNERCTL_TRUST_ROOT")
                                   else None)  # fmt: skip
    if path is None:
        raise UsageError(
            "--approval git needs --trust-root FILE (env PARTNERCTL_TRUST_ROOT): the platform owners who approve "
            "tenant policies, kept outside the reconciled repository. For a trial without verification: "
            "--approval none"
        )
    try:
        raw = path.read_bytes()
    except OSError as error:
        raise UsageError(f"--trust-root {path}: {error.strerror}") from error
    try:
        root = TrustRoot.model_validate(load_document(raw).data)
    except (YamlProblem, ValueError) as error:
        raise UsageError(f"--trust-root {path} is not a valid TrustRoot: {str(error).splitlines()[0]}") from error
    return root, hashlib.sha256(raw).hexdigest()


def reconciler(
    settings: Settings,
    *,
    check_interval: timedelta | None = None,
    reads_repository: bool = False,
    long_running: bool = False,
) -> Reconciler:
    """The engine for a command; ``reads_repository`` for those that plan (they need an approval gate);
    ``long_running`` for the loop."""
    from reconciler.backends.git import GitSource
    from reconciler.engine.reconciler import Options, Reconciler
    from reconciler.webhooks.sender import HttpPinger

    gate = approval_gate(settings) if reads_repository else None
    warning = gate.warning() if gate is not None else None
    if warning:
        click.echo(warning, err=True)
    options = Options(ref=settings.ref, allow_loopback_webhooks=settings.dev_allow_loopback_webhooks)
    if check_interval is not None:
        options.check_interval = check_interval
    alerts = _notifier(settings) if settings.notify else None  # a refused URL: exit 2 before anything is opened
    opened = stores(settings, long_running=long_running)
    try:
        engine = Reconciler(
            opened,
            source=GitSource(settings.repo, home=Path(settings.home)),
            gate=gate,
            pinger=HttpPinger(allow_loopback=settings.dev_allow_loopback_webhooks),
            options=options,
        )
    except ReconcilerError:
        opened.close()
        raise
    if settings.approval == "github" and gate is not None:
        engine.listeners.append(_github_feedback(gate))
    if alerts is not None:
        engine.listeners.append(alerts)
    return engine


def _github_feedback(gate: ApprovalGate) -> ApplyListener:
    """The commit status and pull-request comment after each apply (DESIGN §12), through the gate's GitHub client."""
    from reconciler.approval.github import GitHubApproval
    from reconciler.backends.github import GitHubClient
    from reconciler.backends.github_feedback import GitHubFeedback

    assert isinstance(gate, GitHubApproval) and isinstance(gate.client, GitHubClient)
    return GitHubFeedback(gate.client, warn=lambda line: click.echo(line, err=True))


def _notifier(settings: Settings) -> ApplyListener:
    """The alerts of ``--notify`` (DESIGN §12), URLs checked now; at the command's end its queued alerts get a
    few seconds to go out."""
    from reconciler.webhooks.notify import Notifier, target

    try:
        interval = parse_duration(settings.notify_interval)
    except click.BadParameter as error:
        raise UsageError(f"--notify-interval: {error.message}") from error
    allow = settings.dev_allow_loopback_webhooks
    notifier = Notifier([target(url, allow_loopback=allow) for url in settings.notify], interval=interval,
                        allow_loopback=allow)  # fmt: skip
    ctx = click.get_current_context(silent=True)
    if ctx is not None:
        ctx.call_on_close(notifier.close)
    return notifier


def dispatcher(settings: Settings, schedule: str | None) -> Dispatcher:
    from reconciler.webhooks.dispatcher import DEFAULT_SCHEDULE, Dispatcher, parse_schedule
    from reconciler.webhooks.sender import HttpTransport

    try:
        steps = parse_schedule(schedule) if schedule else DEFAULT_SCHEDULE
    except ValueError as error:
        raise UsageError(f"--schedule {schedule}: {error}") from error
    transport = HttpTransport(allow_loopback=settings.dev_allow_loopback_webhooks)
    return Dispatcher(stores(settings), transport, schedule=steps)


def gateway(
    settings: Settings, *, issuer: str, upstream: str | None, rate_limits: bool = True, count_usage: bool = True
) -> Gateway:
    from reconciler.gateway.app import Gateway
    from reconciler.gateway.keys import KeyCache
    from reconciler.gateway.upstream import HttpUpstream

    opened = stores(settings, for_gateway=True)
    try:
        return Gateway(opened, issuer=issuer, upstream=HttpUpstream(upstream) if upstream else None,
                       rate_limits=rate_limits, count_usage=count_usage,
                       keys=KeyCache(allow_loopback=settings.dev_allow_loopback_webhooks))  # fmt: skip
    except ReconcilerError:
        opened.close()
        raise


def console(settings: Settings, *, trusted_proxies: tuple[str, ...] = ()) -> Console:
    """The console over the gateway's stores; ``--trust-root`` (optional here) names who sees every tenant."""
    from reconciler.console.app import Console
    from reconciler.console.viewers import parse_networks

    try:
        networks = parse_networks(trusted_proxies)
    except ValueError as error:
        raise UsageError(str(error)) from error
    given = settings.trust_root or os.environ.get("PARTNERCTL_TRUST_ROOT")
    root = frozenset(person.email for person in trust_root(settings)[0].spec.approvers) if given else frozenset()
    opened = stores(settings, for_gateway=True)
    return Console(opened, trusted_proxies=networks, root_approvers=root)


def check_listen_address(host: str, port: int, option: str) -> None:
    """A host the server can listen on: a name that resolves, or an address."""
    try:
        socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (OSError, UnicodeError, ValueError) as error:
        raise UsageError(f"{option} {host!r}: not an address to listen on ({error})") from error


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

