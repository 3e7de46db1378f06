"""``partnerctl secrets migrate``: moving an embedded installation's secrets into Vault."""

from __future__ import annotations

import secrets
from pathlib import Path
from typing import Any

import click

from reconciler import clock
from reconciler.backends import open_secrets, open_stores
from reconciler.backends.sqlite.secrets import LocalSecretStore
from reconciler.backends.vault.migrate import migrate
from reconciler.backends.vault.store import VaultSecretStore
from reconciler.cli import output
from reconciler.cli.options import common_options, settings_from
from reconciler.engine.journal import Journal
from reconciler.engine.reconciler import LOCK_TIMEOUT, STORE_ID, Options
from reconciler.errors import UsageError


@click.group(name="secrets")
def secrets_group() -> None:
    """Administration of the secret store."""


@secrets_group.command(name="migrate")
@click.option("--from", "source_url", help="The embedded store (default: local store under --home).")
@click.option("--to", "target_url", required=True, help="The Vault store: vault+https://HOST:PORT?… (empty prefix).")
@common_options
@click.pass_context
def migrate_command(ctx: click.Context, /, source_url: str | None, target_url: str, **given: Any) -> None:
    """Move credentials, webhook secrets, pending pickups and the gateway's keys into Vault, re-issuing nothing.

    Partners keep their client secrets: the local hashing key is imported into Vault Transit. Run it
    with a Vault token that may also import Transit keys (see README). Afterwards pass the Vault URL
    as --secrets (or PARTNERCTL_SECRETS) to every command; the local store is renamed, not deleted.

    \b
    Example:
      VAULT_TOKEN=… partnerctl secrets migrate --to vault+https://vault.internal:8200
    """
    settings = settings_from(ctx, given)
    home = Path(settings.home)
    stores = open_stores(home=home, state=settings.state, secrets=source_url)
    try:
        source = stores.secrets
        if not isinstance(source, LocalSecretStore):
            raise UsageError(f"--from {source_url}: only an embedded (local) store can be migrated")
        target = open_secrets(target_url, home=home)
        try:
            if not isinstance(target, VaultSecretStore):
                raise UsageError(f"--to {target_url}: migrate into Vault (vault+https://HOST:PORT?…)")
            journal = Journal(stores, actor=Options().actor)
            with journal.exclusive(timeout=LOCK_TIMEOUT):
                journal.recover(now=clock.now())
                report = migrate(source, target)
                store_id = secrets.token_hex(16)  # binds the live state to the new store from now on
                target.replace_sealed(STORE_ID, store_id.encode())
                stores.journal.put_setting(STORE_ID, store_id)
        finally:
            target.close()
    finally:
        stores.close()
    folder = Path(source_url.removeprefix("local://").removeprefix("file://")) if source_url else home / "secrets"
    kept = folder.with_name(folder.name + ".migrated")
    folder.rename(kept)  # so that a command without --secrets cannot quietly start a second, empty store
    summary = {**report.__dict__, "target": target_url, "localStoreKeptAt": str(kept)}
    if settings.output == "json":
        output.emit_json(summary)
        return
    click.echo(
        f"Migrated {report.partners} partners into Vault: {report.credentials} credentials ({report.live_credentials} "
        f"live), {report.webhook_secrets} webhook secrets, {report.pending_pickups} pending pickups, "
        f"{report.installation_secrets} installation secrets. Nothing was re-issued; the hashing key is now "
        f"Transit key {report.hashing_key}.\n"
        f"From now on pass --secrets {target_url} (or set PARTNERCTL_SECRETS).\n"
        f"The local store is kept at {kept}: delete it once you have checked the migration (it holds the old key)."
    )
