"""Store backends, chosen by URL (``--state``, ``--secrets``) and opened together as one :class:`Stores`.

--state   (default)            SQLite at <home>/state.db
          sqlite:///PATH       SQLite at PATH
          kubernetes://NS      PartnerIntegration objects in namespace NS (the journal stays in SQLite)
          postgresql://USER@HOST:PORT/DB?sslmode=verify-full[&pool=N][&mirror=kubernetes://NS]
                               records and journal in PostgreSQL (see postgresql/); libpq's
                               environment (PGPASSWORD, PGPASSFILE, PGSSLROOTCERT, …) applies
--secrets (default)            local store in <home>/secrets/
          local:///PATH        local store in folder PATH
          vault+https://HOST:PORT?mount=secret&prefix=scp-partners&transit=transit&key=scp-partners
                               Vault or OpenBao (see vault/); vault:// takes VAULT_ADDR

Each backend module is imported only when its URL is used, so a command never loads hvac or the
Kubernetes client it does not need.
"""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlsplit

from reconciler.errors import ReconcilerError, UsageError
from reconciler.stores import Stores
from reconciler.stores.partners import PartnerStore
from reconciler.stores.secrets import SecretStore

__all__ = ["open_secrets", "open_stores"]


def open_stores(
    *,
    home: Path,
    state: str | None = None,
    secrets: str | None = None,
    state_cache_seconds: float = 0.0,
    secret_cache_seconds: float = 0.0,
    follow_changes: bool = False,
) -> Stores:
    """The stores of the installation under ``home``. The cache settings (the gateway's) let a remote store
    reuse its change check, and a remote secret store its verifications, for that long. ``follow_changes``
    (long-running processes): a remote state store watches for changes instead of polling."""
    from reconciler.backends.sqlite.database import Database, prepare_folder
    from reconciler.backends.sqlite.state import SCHEMA, SqliteJournal, SqlitePartners

    prepare_folder(home)
    parts = urlsplit(state or "")
    if parts.scheme in ("postgresql", "postgres"):
        assert state is not None
        return _postgresql(state, home=home, secrets=secrets, secret_cache_seconds=secret_cache_seconds,
                           follow_changes=follow_changes)  # fmt: skip
    partners: PartnerStore
    if not state:
        database = Database(home / "state.db", SCHEMA)
        partners = SqlitePartners(database)
    elif parts.scheme == "sqlite" and parts.path:
        database = Database(Path(parts.path), SCHEMA)
        partners = SqlitePartners(database)
    elif parts.scheme == "kubernetes":
        from reconciler.backends.kubernetes.api import current_namespace
        from reconciler.backends.kubernetes.state import KubernetesPartners

        database = Database(home / "state.db", SCHEMA)
        partners = KubernetesPartners(parts.netloc or current_namespace(), cache_seconds=state_cache_seconds,
                                      watch=follow_changes)  # fmt: skip
    else:
        raise UsageError(
            f"--state {parts.scheme}://…: unsupported; use sqlite:///PATH (default: SQLite under --home), "
            "kubernetes://NAMESPACE or postgresql://USER@HOST:PORT/DATABASE"
        )
    journal = SqliteJournal(database, home=home, partners=partners)
    try:
        secret_store = open_secrets(secrets, home=home, cache_seconds=secret_cache_seconds)
    except ReconcilerError:
        partners.close()
        journal.close()
        raise
    return Stores(partners=partners, journal=journal, secrets=secret_store)


def _postgresql(state: str, *, home: Path, secrets: str | None, secret_cache_seconds: float,
                follow_changes: bool) -> Stores:
    from reconciler.backends.postgresql.changes import ChangeListener
    from reconciler.backends.postgresql.database import Database, split_options
    from reconciler.backends.postgresql.schema import check
    from reconciler.backends.postgresql.state import PostgresJournal, PostgresPartners

    _, options = split_options(state)
    database = Database(state)
    try:
        check(database)
        listener = ChangeListener(database) if follow_changes else None
        records = PostgresPartners(database, listener=listener)
        partners: PartnerStore = records
        after_commit = None
        if options.get("mirror"):
            from reconciler.backends.postgresql.mirror import mirrored

            mirror = mirrored(records, options["mirror"])
            partners, after_commit = mirror, mirror.copy
        journal = PostgresJournal(database, partners=records, after_commit=after_commit)
        secret_store = open_secrets(secrets, home=home, cache_seconds=secret_cache_seconds)
    except ReconcilerError:
        database.close()
        raise
    return Stores(partners=partners, journal=journal, secrets=secret_store)


def open_secrets(url: str | None, *, home: Path, cache_seconds: float = 0.0) -> SecretStore:
    """The secret store at ``url``; ``cache_seconds`` lets a remote store answer repeated reads from memory."""
    from reconciler.backends.sqlite.secrets import LocalSecretStore

    if not url:
        return LocalSecretStore(home / "secrets")
    parts = urlsplit(url)
    if parts.scheme in ("local", "file") and parts.path:
        return LocalSecretStore(Path(parts.path))
    if parts.scheme in ("vault", "vault+https", "vault+http"):
        from reconciler.backends.vault.config import parse_url
        from reconciler.backends.vault.store import VaultSecretStore

        return VaultSecretStore(parse_url(url), cache_seconds=cache_seconds)
    raise UsageError(
        f"--secrets {url}: unsupported; use local:///FOLDER (default: local store under --home) "
        "or vault+https://HOST:PORT"
    )
