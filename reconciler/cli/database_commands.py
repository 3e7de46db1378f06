"""``partnerctl db migrate`` and ``partnerctl state migrate``: the PostgreSQL schema, and moving into it."""

from __future__ import annotations

from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import click

from reconciler.backends.postgresql.database import Database, display_url
from reconciler.cli import output
from reconciler.cli.options import common_options, settings_from
from reconciler.errors import UsageError

__all__ = ["db", "state_group"]


def _postgresql(url: str | None, option: str) -> str:
    if not url or urlsplit(url).scheme not in ("postgresql", "postgres"):
        shown = display_url(url) if url and "://" in url else url or "nothing"
        raise UsageError(f"{option} is {shown}: give a postgresql://USER@HOST:PORT/DATABASE URL "
                         "(the password in PGPASSWORD or PGPASSFILE)")  # fmt: skip
    return url


@click.group()
def db() -> None:
    """The PostgreSQL schema."""


@db.command(name="migrate")
@common_options
@click.pass_context
def migrate_command(ctx: click.Context, /, **given: Any) -> None:
    """Create or upgrade the schema of the --state PostgreSQL database; safe to run from several processes.

    \b
    Example:
      export PGPASSWORD=…
      partnerctl --state 'postgresql://partnerctl@db.internal/partnerctl?sslmode=verify-full' db migrate
    """
    from reconciler.backends.postgresql.schema import LATEST, migrate

    settings = settings_from(ctx, given)
    database = Database(_postgresql(settings.state, "--state (PARTNERCTL_STATE)"), max_size=1)
    try:
        applied = migrate(database)
    finally:
        database.close()
    if settings.output == "json":
        output.emit_json({"database": database.name, "version": LATEST,
                          "applied": [{"version": step.version, "name": step.name} for step in applied]})  # fmt: skip
        return
    for step in applied:
        click.echo(f"applied migration {step.version}: {step.name}")
    click.echo(f"{database.name}: schema at version {LATEST}" + ("" if applied else " (nothing to do)"))


@click.group(name="state")
def state_group() -> None:
    """Moving an installation's live state."""


@state_group.command(name="migrate")
@click.option("--from", "source_url", help="The embedded state: sqlite:///PATH (default: state.db under --home).")
@click.option("--to", "target_url", required=True, help="The PostgreSQL database (schema migrated, empty).")
@common_options
@click.pass_context
def state_migrate(ctx: click.Context, /, source_url: str | None, target_url: str, **given: Any) -> None:
    """Move partner records, the audit chain, outbox and memo into PostgreSQL, re-issuing nothing.

    The audit chain is verified before and after; the copy is one transaction. Afterwards pass the
    PostgreSQL URL as --state (or PARTNERCTL_STATE) to every command; the SQLite files are kept.

    \b
    Example:
      partnerctl state migrate --to postgresql://partnerctl@db.internal:5432/partnerctl
    """
    from reconciler.backends.postgresql.schema import check
    from reconciler.backends.postgresql.state import PostgresJournal, PostgresPartners
    from reconciler.backends.postgresql.transfer import transfer
    from reconciler.backends.sqlite.database import Database as SqliteDatabase
    from reconciler.backends.sqlite.lock import installation_lock
    from reconciler.backends.sqlite.state import SCHEMA, SqliteJournal, SqlitePartners

    settings = settings_from(ctx, given)
    home = Path(settings.home)
    if source_url and not (source_url.startswith("sqlite:///") and len(source_url) > len("sqlite:///")):
        raise UsageError(f"--from {source_url}: only an embedded installation moves (sqlite:///PATH)")
    path = Path(source_url.removeprefix("sqlite://")) if source_url else home / "state.db"
    if not path.is_file():
        raise UsageError(f"--from: there is no embedded installation at {path} (give --home or --from sqlite:///PATH)")
    target = Database(_postgresql(target_url, "--to"))
    source = SqliteDatabase(path, SCHEMA)
    try:
        check(target)
        records = SqlitePartners(source)
        with installation_lock(path.parent, timeout=30):
            target_records = PostgresPartners(target)
            moved = transfer((records, SqliteJournal(source, home=path.parent, partners=records)),
                             (target_records, PostgresJournal(target, partners=target_records)))  # fmt: skip
    finally:
        source.close()
        target.close()
    if settings.output == "json":
        output.emit_json({"target": target.name, "partners": moved.partners, "auditEntries": moved.audit_entries,
                          "auditHeadSeq": moved.audit_head_seq, "memoEntries": moved.memo_entries,
                          "events": moved.events, "deliveries": moved.deliveries})  # fmt: skip
        return
    click.echo(
        f"Moved {moved.partners} partners, {moved.audit_entries} audit entries (head seq {moved.audit_head_seq}, "
        f"verified before and after), {moved.events} events with {moved.deliveries} deliveries and "
        f"{moved.memo_entries} memo entries into {target.name}. Nothing was re-issued.\n"
        f"From now on pass --state {target.name} (or set PARTNERCTL_STATE); {path} is kept: remove it once "
        "you have checked the move."
    )
