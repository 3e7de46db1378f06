"""Store backends, chosen by URL: ``--state`` and ``--secrets``.

--state   (default)            SQLite at <home>/state.db
          sqlite:///PATH       SQLite at PATH
          kubernetes://NS      PartnerIntegration objects in namespace NS (see kubernetes_state.py)
--secrets (default)            local store in <home>/secrets/
          local:///PATH        local store in folder PATH
          vault+https://HOST:PORT?mount=secret&prefix=scp-partners&transit=transit&key=scp-partners
                               Vault or OpenBao (see vault_secrets.py); vault:// takes VAULT_ADDR
"""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlsplit

from reconciler.errors import UsageError
from reconciler.stores.secrets import SecretStore
from reconciler.stores.state import StateStore


def open_state(url: str | None, *, home: Path, cache_seconds: float = 0.0) -> StateStore:
    """The state store at ``url``; ``cache_seconds`` lets a remote store reuse its change check that long."""
    from reconciler.backends.sqlite.state import SqliteStateStore

    if not url:
        return SqliteStateStore(home / "state.db")
    parts = urlsplit(url)
    if parts.scheme == "sqlite" and parts.path:
        return SqliteStateStore(Path(parts.path))
    if parts.scheme == "kubernetes":
        from reconciler.backends.kubernetes.api import current_namespace
        from reconciler.backends.kubernetes.state import KubernetesStateStore

        return KubernetesStateStore(parts.netloc or current_namespace(), home, cache_seconds=cache_seconds)
    raise UsageError(
        f"--state {url}: unsupported; use sqlite:///PATH (default: SQLite under --home) or kubernetes://NAMESPACE"
    )


def open_secrets(url: str | None, *, home: Path, cache_seconds: float = 0.0) -> SecretStore:
    """The secret store at ``url``; ``cache_seconds`` lets a remote store answer repeated reads from memory."""
    from reconciler.backends.sqlite.secrets import LocalSecretStore

    if not url:
        return LocalSecretStore(home / "secrets")
    parts = urlsplit(url)
    if parts.scheme in ("local", "file") and parts.path:
        return LocalSecretStore(Path(parts.path))
    if parts.scheme in ("vault", "vault+https", "vault+http"):
        from reconciler.backends.vault.store import VaultSecretStore, parse_url

        return VaultSecretStore(parse_url(url), cache_seconds=cache_seconds)
    raise UsageError(
        f"--secrets {url}: unsupported; use local:///FOLDER (default: local store under --home) "
        "or vault+https://HOST:PORT"
    )
