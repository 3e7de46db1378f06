"""``partnerctl status``, ``partnerctl credentials …`` and ``partnerctl audit …``."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

import click

from reconciler import clock
from reconciler.cli import output
from reconciler.cli.options import common_options, settings_from
from reconciler.cli.wiring import check_partner_key, reconciler
from reconciler.credentials import client_id_for
from reconciler.engine.status import scope_usage_json
from reconciler.errors import UsageError
from reconciler.stores import Stores
from reconciler.stores import audit as chain
from reconciler.stores.records import GENESIS_HASH, AuditHead


@click.command()
@click.argument("partner", required=False)
@common_options
@click.pass_context
def status(ctx: click.Context, /, partner: str | None, **given: Any) -> None:
    """Phase/health, conditions, approval, credential age and last sync of partners, and each scope's last use
    at the gateway (a scope granted for the tenant's accessReview.unusedScopeDays and not used in that time
    is shown as unused).

    \b
    Examples:
      partnerctl status
      partnerctl status ministry-social-affairs/northbridge-bank --output json
    """
    settings = settings_from(ctx, given)
    with reconciler(settings) as engine:
        entries = engine.status(check_partner_key(partner) if partner else None)
        _add_scope_usage(entries, engine.stores)
    if settings.output == "json":
        output.emit_json({"partners": entries})
    else:
        detailed = partner is not None
        click.echo(output.status_text(entries, detailed=detailed) + _scope_usage_text(entries, detailed=detailed))


def _add_scope_usage(entries: list[dict[str, Any]], stores: Stores) -> None:
    """``scopeUsage`` in each entry: one read of the usage counters for all the partners shown."""
    if not entries:
        return
    keys = [entry["partner"] for entry in entries]
    records = stores.partners.partners() if len(keys) > 1 else {keys[0]: stores.partners.partner(keys[0])}
    usage = stores.journal.scope_usage(keys)
    now = clock.now()
    for entry in entries:
        record = records.get(entry["partner"])
        entry["scopeUsage"] = scope_usage_json(record, usage.get(entry["partner"], {}), now=now) if record else []


def _scope_usage_text(entries: list[dict[str, Any]], *, detailed: bool) -> str:
    """Unused scopes under the table; with one partner, every scope's last use."""
    lines = []
    for entry in entries:
        scopes = entry.get("scopeUsage", [])
        if detailed:
            lines.append("Scope use:")
            lines.extend(f"  {scope['name']:<28} last used {(scope['lastUsed'] or 'never')[:19]}"
                         + ("  UNUSED" if scope["unused"] else "") for scope in scopes)  # fmt: skip
        elif any(scope["unused"] for scope in scopes):
            names = ", ".join(scope["name"] for scope in scopes if scope["unused"])
            lines.append(f"Unused scopes of {entry['partner']}: {names}")
    return "\n".join(["", *lines]) if lines else ""


@click.group()
def credentials() -> None:
    """One-time delivery and forced rotation of partner credentials."""


@credentials.command()
@click.argument("partner")
@common_options
@click.pass_context
def deliver(ctx: click.Context, /, partner: str, **given: Any) -> None:
    """Pick up a partner's new credentials, once. A second pickup fails (exit 1) and is audited.

    \b
    Example:
      partnerctl credentials deliver ministry-social-affairs/northbridge-bank --output json
    """
    settings = settings_from(ctx, given)
    key = check_partner_key(partner)
    gateway = os.environ.get("PARTNERCTL_GATEWAY_URL", "http://127.0.0.1:8080").rstrip("/")
    with reconciler(settings) as engine:
        document = engine.delivery(key, token_endpoint=f"{gateway}/oauth2/token")
        method = engine.client_authentication(key) if document is None else None
    if document is None:
        advice = f" If the secret was lost, run: partnerctl credentials rotate {key}"
        if method == "private_key_jwt":
            advice = (f" {key} authenticates with private_key_jwt and has no client secret: it needs only its client "
                      f"id, {client_id_for(key)}, and the token endpoint, {gateway}/oauth2/token.")  # fmt: skip
        click.echo(
            f"partnerctl: nothing to pick up for {key}: its credentials were already delivered or never issued; "
            "this refusal is audited." + advice,
            err=True,
        )
        ctx.exit(1)
    if settings.output == "json":
        output.emit_json(document)
    elif "wrap_token" in document:
        click.echo(output.wrapped_text(document))
    else:
        click.echo(output.pickup_text(document))


@credentials.command()
@click.argument("token", required=False)
@common_options
@click.pass_context
def unwrap(ctx: click.Context, /, token: str | None, **given: Any) -> None:
    """Unwrap a Vault-mode delivery: the Tech Lead's single use of the wrap token from `deliver`.

    Reads the token from standard input when TOKEN is left out or is "-" (keeps it out of the process
    list). Needs only the Vault address (--secrets vault+https://… or VAULT_ADDR), no Vault token.
    `vault unwrap TOKEN` gives the same document. A token already used or expired fails (exit 1) and,
    when a Vault token with access to the store is set, the failure is audited.

    \b
    Example:
      partnerctl --secrets vault+https://vault.internal:8200 credentials unwrap - < wrap-token.txt
    """
    from reconciler.backends.vault.config import parse_url
    from reconciler.backends.vault.unwrap import UnwrapRefused, unwrap_delivery

    settings = settings_from(ctx, given)
    if not token or token == "-":  # noqa: S105 - "-" means standard input
        token = sys.stdin.readline().strip()
    if not token:
        raise click.UsageError("give the wrap token as an argument or on standard input")
    config = parse_url(settings.secrets or "vault://")
    try:
        document = unwrap_delivery(config, token)
    except UnwrapRefused as refused:
        click.echo(f"partnerctl: {refused}", err=True)
        ctx.exit(1)
    if settings.output == "json":
        output.emit_json(document)
    else:
        click.echo(output.pickup_text(document))


@credentials.command()
@click.argument("partner")
@common_options
@click.pass_context
def rotate(ctx: click.Context, /, partner: str, **given: Any) -> None:
    """Rotate a partner's client secret now; the old one stays valid for the tenant's overlapDays.

    \b
    Example:
      partnerctl credentials rotate ministry-social-affairs/northbridge-bank
    """
    settings = settings_from(ctx, given)
    with reconciler(settings) as engine:
        credential = engine.rotate(check_partner_key(partner))
    message = {"partner": credential.partner, "clientId": credential.client_id, "generation": credential.generation}
    if settings.output == "json":
        output.emit_json(message)
    else:
        click.echo(
            f"Rotated {credential.partner}: generation {credential.generation} of {credential.client_id}. "
            f"Deliver it with: partnerctl credentials deliver {credential.partner}"
        )


@click.group()
def audit() -> None:
    """The tamper-evident audit log."""


@audit.command()
@click.option("--file", "exported", type=click.Path(dir_okay=False, exists=True, path_type=Path),
              help="Check an exported chain (JSON Lines of `audit export`) instead of the installation's.")  # fmt: skip
@common_options
@click.pass_context
def verify(ctx: click.Context, /, exported: Path | None, **given: Any) -> None:
    """Check the hash chain and its committed head. Exit 0 intact, 1 tampered."""
    settings = settings_from(ctx, given)
    if exported is not None:
        verdict = _verify_export(exported)
    else:
        with reconciler(settings) as engine:
            verdict = engine.verify_audit()
    if settings.output == "json":
        output.emit_json(
            {"intact": verdict.intact, "entries": verdict.entries, "firstBrokenSeq": verdict.first_broken_seq,
             "problem": verdict.problem}
        )  # fmt: skip
    elif verdict.intact:
        click.echo(f"audit log intact: {verdict.entries} entries")
    else:
        click.echo(f"audit log TAMPERED: first broken seq {verdict.first_broken_seq}: {verdict.problem}")
    ctx.exit(0 if verdict.intact else 1)


@audit.command(name="log")
@click.option("--partner", help="Only entries of TENANT/PARTNER.")
@common_options
@click.pass_context
def log(ctx: click.Context, /, partner: str | None, **given: Any) -> None:
    """Show the audit log."""
    settings = settings_from(ctx, given)
    with reconciler(settings) as engine:
        entries = [
            entry
            for entry in engine.audit_entries()
            if partner is None or (isinstance(entry, dict) and entry.get("partner") == partner)
        ]
    if settings.output == "json":
        output.emit_json({"entries": entries})
    else:
        click.echo(output.audit_text(entries))


@audit.command(name="export")
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), help="Write to FILE (default: stdout).")
@common_options
@click.pass_context
def export(ctx: click.Context, /, out: Path | None, **given: Any) -> None:
    """Write the audit chain as JSON Lines, entry by entry as hashed; `audit verify --file` checks it."""
    settings = settings_from(ctx, given)
    with reconciler(settings) as engine:
        try:
            target = out.open("w", encoding="utf-8") if out is not None else sys.stdout
        except OSError as error:
            raise UsageError(f"--out {out}: cannot write there ({error.strerror})") from error
        try:
            for entry in engine.audit_entries():
                target.write(chain.canonical(entry) + "\n")
        finally:
            if out is not None:
                target.close()


def _verify_export(path: Path) -> chain.Verdict:
    """The chain in ``path`` checked on its own; its last entry stands for the committed head."""
    entries: list[Any] = []
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            entries.append(json.loads(line))
        except ValueError:
            entries.append(line)
    last = entries[-1] if entries and isinstance(entries[-1], dict) else {}
    head = AuditHead(seq=int(last.get("seq") or 0), hash=str(last.get("hash") or GENESIS_HASH))
    return chain.verify(entries, head)
