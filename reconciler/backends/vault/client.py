"""An authenticated hvac client that renews its token and turns Vault's failures into partnerctl's error kinds."""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TypeVar

import hvac
import hvac.exceptions
import requests

from reconciler.backends.vault.config import VaultConfig
from reconciler.errors import NotFound, Stalled, StoreUnavailable, UsageError, WriteConflict

__all__ = ["VaultClient"]

T = TypeVar("T")
SERVICE_ACCOUNT_TOKEN = "/var/run/secrets/kubernetes.io/serviceaccount/token"  # noqa: S105 - a path


class VaultClient:
    """An authenticated hvac client that renews its token and turns Vault's failures into clear errors."""

    def __init__(self, config: VaultConfig, *, environ: Mapping[str, str] = os.environ, token: str | None = None):
        self.config = config
        self._environ = environ
        self.hvac = hvac.Client(
            url=config.address,
            namespace=config.namespace,
            verify=config.cacert or True,
            timeout=config.timeout,
            allow_redirects=False,
        )
        self._renew_at: float | None = None
        self._renewable = False
        if token is not None:
            self.hvac.token = _checked_token(token, "the wrap token")
        else:
            self._log_in()

    # --- authentication ---------------------------------------------------------------------------

    def _log_in(self) -> None:
        config = self.config
        if config.auth == "token":
            token = self._environ.get("VAULT_TOKEN") or _token_file()
            if not token:
                raise UsageError("Vault auth=token: set VAULT_TOKEN (or use auth=kubernetes / auth=approle)")
            self.hvac.token = _checked_token(token, "VAULT_TOKEN")
            data = self.call("look up its own token", lambda: self.hvac.auth.token.lookup_self())["data"]
            self._schedule_renewal(int(data.get("ttl") or 0), bool(data.get("renewable")))
            return
        if config.auth == "kubernetes":
            path = Path(self._environ.get("VAULT_K8S_TOKEN_PATH", SERVICE_ACCOUNT_TOKEN))
            try:
                jwt = path.read_text().strip()
            except OSError as error:
                raise UsageError(f"Vault auth=kubernetes: cannot read the service account token {path}: "
                                 f"{error.strerror}") from error  # fmt: skip
            mount = config.auth_mount or "kubernetes"
            auth = self.call(
                "log in (kubernetes)", lambda: self.hvac.auth.kubernetes.login(config.role, jwt, mount_point=mount)
            )
        else:
            role_id, secret_id = self._environ.get("VAULT_ROLE_ID"), self._environ.get("VAULT_SECRET_ID")
            if not role_id or not secret_id:
                raise UsageError("Vault auth=approle: set VAULT_ROLE_ID and VAULT_SECRET_ID")
            mount = config.auth_mount or "approle"
            auth = self.call(
                "log in (approle)", lambda: self.hvac.auth.approle.login(role_id, secret_id, mount_point=mount)
            )
        self._schedule_renewal(int(auth["auth"].get("lease_duration") or 0), bool(auth["auth"].get("renewable")))

    def _schedule_renewal(self, ttl: int, renewable: bool) -> None:
        # Renew (or log in again) once two thirds of the token's life are gone; ttl 0 means it never expires.
        self._renew_at = time.monotonic() + ttl * 2 / 3 if ttl else None
        self._renewable = renewable

    def _refresh_token(self) -> None:
        self._renew_at = None
        if self._renewable:
            data = self.call("renew its token", lambda: self.hvac.auth.token.renew_self())["auth"]
            self._schedule_renewal(int(data.get("lease_duration") or 0), bool(data.get("renewable")))
        elif self.config.auth != "token":
            self._log_in()

    # --- calls ------------------------------------------------------------------------------------

    def call(self, what: str, request: Callable[[], T], *, missing: Callable[[], T] | None = None) -> T:
        """Run one Vault request; ``missing`` answers a 404 for an absent record."""
        if self._renew_at is not None and time.monotonic() >= self._renew_at:
            self._refresh_token()
        address = self.config.address
        try:
            return request()
        except hvac.exceptions.VaultDown as error:
            raise StoreUnavailable(
                f"Vault at {address} is sealed (while trying to {what}); nothing more was written. "
                "Unseal it (vault operator unseal) and run again: the next run converges."
            ) from error
        except (requests.exceptions.ConnectionError, requests.exceptions.Timeout) as error:
            reason = "timed out" if isinstance(error, requests.exceptions.Timeout) else "connection failed"
            raise StoreUnavailable(
                f"cannot reach Vault at {address} (while trying to {what}: {reason}); nothing more was written. "
                "Check VAULT_ADDR / --secrets and that Vault is running, then run again."
            ) from error
        except requests.exceptions.RequestException as error:
            problem = type(error).__name__
            raise Stalled(f"cannot talk to Vault at {address} (while trying to {what}): {problem}") from error
        except OSError as error:  # e.g. VAULT_CACERT names no readable bundle
            raise Stalled(f"cannot talk to Vault at {address} (while trying to {what}): {error}") from error
        except hvac.exceptions.Forbidden as error:
            raise Stalled(
                f"Vault at {address} refused to {what}: permission denied. The token is missing, expired or "
                "revoked, or its policy lacks this path (see deploy/vault/partnerctl-policy.hcl)."
            ) from error
        except hvac.exceptions.InvalidPath as error:
            message = str(error)
            if "no handler for route" in message:
                raise Stalled(self._missing_mount(message)) from error
            if missing is not None:
                return missing()
            raise NotFound(f"Vault at {address}: nothing found while trying to {what}") from error
        except hvac.exceptions.InvalidRequest as error:
            message = str(error).split(", on ")[0]
            if "check-and-set" in message:
                raise WriteConflict(
                    f"another writer changed the record first (while trying to {what}); nothing was written. "
                    "Run again: the next run starts from what is in Vault now."
                ) from error
            if "key not found" in message:
                key, mount = self.config.key, self.config.transit
                raise Stalled(
                    f"Vault at {address} has no Transit key {key!r}: create it with `vault write -f {mount}/keys/{key}`"
                ) from error
            raise Stalled(f"Vault at {address} rejected a request to {what}: {message}") from error
        except hvac.exceptions.VaultError as error:
            message = str(error).split(", on ")[0]
            raise StoreUnavailable(
                f"Vault at {address} failed to {what}: {message or type(error).__name__}"
            ) from error

    def _missing_mount(self, message: str) -> str:
        config = self.config
        if f"{config.transit}/" in message:
            return (f"Vault at {config.address} has no Transit engine at {config.transit}/: enable it with "
                    f"`vault secrets enable -path={config.transit} transit`")  # fmt: skip
        return (f"Vault at {config.address} has no KV v2 engine at {config.mount}/: enable it with "
                f"`vault secrets enable -path={config.mount} kv-v2`")  # fmt: skip

    def close(self) -> None:
        self.hvac.adapter.close()


def _checked_token(token: str, what: str) -> str:
    """A Vault token is printable ASCII; anything else is a mistake, never sent (and never repeated)."""
    if not (token.isascii() and token.isprintable()) or " " in token:
        raise UsageError(f"{what} is not a Vault token (tokens are printable ASCII without spaces)")
    return token


def _token_file() -> str | None:
    path = Path.home() / ".vault-token"
    try:
        return path.read_text().strip() or None
    except OSError:
        return None
