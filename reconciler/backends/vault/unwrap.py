"""The Tech Lead's side of a Vault-mode delivery: unwrapping the single-use wrap token."""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

import hvac.exceptions

from reconciler import clock
from reconciler.backends.vault.client import VaultClient
from reconciler.backends.vault.config import VaultConfig
from reconciler.backends.vault.store import VaultSecretStore
from reconciler.errors import NotFound, ReconcilerError

__all__ = ["UnwrapRefused", "unwrap_delivery"]


class UnwrapRefused(NotFound):
    """The wrap token was already used, has expired, or was never ours."""


def unwrap_delivery(config: VaultConfig, token: str, *, environ: Mapping[str, str] = os.environ) -> dict[str, Any]:
    """The delivery document behind a wrap token. Needs no Vault token: the wrap token is the authority.

    A refused unwrap means someone else may hold the credentials; with a Vault token that can write
    the store (an operator's), the refusal is recorded for the audit log."""
    client = VaultClient(config, token=token)  # sent as X-Vault-Token, as `vault unwrap` does

    def attempt() -> Any:
        try:
            return client.hvac.sys.unwrap()
        except (hvac.exceptions.InvalidRequest, hvac.exceptions.Forbidden):
            return None  # used, expired or never a wrap token: Vault cannot tell which, and neither can we

    try:
        answer = client.call("unwrap the delivery", attempt)
    finally:
        client.close()
    if answer is None:
        partner = _record_refusal(config, token, environ) if environ.get("VAULT_TOKEN") else None
        raise UnwrapRefused(
            "this wrap token was already unwrapped, has expired, or is not a wrap token. If you did not unwrap "
            "it yourself, someone else may hold the credentials: ask the platform team to rotate them "
            f"(partnerctl credentials rotate {partner or 'TENANT/PARTNER'})"
            + ("; the refusal is audited" if partner else "")
        )
    return dict(answer["data"])


def _record_refusal(config: VaultConfig, token: str, environ: Mapping[str, str]) -> str | None:
    try:
        store = VaultSecretStore(config, client=VaultClient(config, environ=environ))
    except ReconcilerError:
        return None
    try:
        return store.refuse_unwrap(token, now=clock.now())
    except ReconcilerError:
        return None
    finally:
        store.close()
