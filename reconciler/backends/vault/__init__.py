"""HashiCorp Vault (or OpenBao) as the secret store, through hvac.

    config.py    the ``--secrets vault+https://…`` URL and its settings
    client.py    the authenticated client: login, token renewal, Vault's errors as partnerctl's kinds
    records.py   a partner's KV record as plain data
    store.py     the SecretStore: KV v2 records with check-and-set, Transit HMAC and encryption, wrapping
    unwrap.py    the Tech Lead's unwrap of a wrapped delivery
    migrate.py   moving an embedded store into Vault without re-issuing anything
"""

from __future__ import annotations

from reconciler.backends.vault.config import VaultConfig, parse_url
from reconciler.backends.vault.store import VaultSecretStore
from reconciler.backends.vault.unwrap import UnwrapRefused, unwrap_delivery

__all__ = ["UnwrapRefused", "VaultConfig", "VaultSecretStore", "parse_url", "unwrap_delivery"]
