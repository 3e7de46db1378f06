"""The secret store: keyed hashes of client secrets, sealed one-time pickups, webhook signing secrets.

The store hashes and seals itself, so its keys never leave it (as with Vault Transit). Every change
of a credential also records an :class:`~reconciler.stores.records.OutboxEvent` in the same
transaction; the journal copies those into the audit log, so an event is never lost even if the
process dies between the two stores.
"""

from __future__ import annotations

from collections.abc import Collection
from datetime import datetime
from typing import Protocol

from reconciler.credentials import Credential
from reconciler.stores.records import OutboxEvent, Pickup

__all__ = ["SecretStore"]


class SecretStore(Protocol):
    """Secret material of every partner and of the installation itself."""

    def live_credentials(self) -> dict[str, list[Credential]]:
        """Active and previous (in overlap) credentials, by partner."""

    def credentials(self, partner: str) -> list[Credential]:
        """All generations of a partner's credential, revoked ones included, oldest first."""

    def issue_credential(self, partner: str, client_id: str, secret: str, *, now: datetime, reason: str) -> Credential:
        """Store the keyed hash of a new active credential and seal the secret for pickup."""

    def rotate_credential(self, partner: str, secret: str, *, now: datetime, overlap_until: datetime) -> Credential:
        """Make a new active credential; the current one stays valid until ``overlap_until``."""

    def revoke_credential(self, credential_id: str, *, now: datetime, reason: str) -> None: ...

    def verify(self, client_id: str, secret: str) -> Credential | None:
        """The live credential matching ``client_id`` and ``secret`` (constant-time), or None."""

    def put_webhook_secret(self, partner: str, webhook: str, secret: str, *, now: datetime) -> None:
        """Keep a webhook's signing secret (encrypted) and add it to the partner's pickup."""

    def rotate_webhook_secret(
        self, partner: str, webhook: str, secret: str, *, now: datetime, overlap_until: datetime
    ) -> None:
        """Make ``secret`` the webhook's signing secret and add it to the partner's pickup, as
        :meth:`put_webhook_secret` does; the one it replaces is kept as the previous secret, still signing
        until ``overlap_until``. Records ``webhook.secret_rotated`` (the webhook and the overlap's end).

        A second rotation during an overlap replaces the previous secret: the oldest is destroyed at
        once, so no more than two ever sign. InvalidState when the webhook has no secret to rotate."""

    def webhook_secret(self, partner: str, webhook: str) -> str | None:
        """The webhook's current signing secret."""

    def webhook_signing_secrets(self, partner: str, webhook: str, *, now: datetime) -> list[str]:
        """What to sign with: the current secret, then the previous one while ``now`` is before the end of
        its overlap (whether or not :meth:`expire_webhook_secrets` ran); [] when there is no current one."""

    def expire_webhook_secrets(self, now: datetime) -> int:
        """Destroy the previous webhook secrets whose overlap has ended by ``now``; how many."""

    def webhook_secret_names(self, partners: Collection[str] | None = None) -> dict[str, set[str]]:
        """The names of the webhooks whose signing secret is held, by partner (of ``partners`` only, if given)."""

    def remove_webhook_secret(self, partner: str, webhook: str) -> None:
        """Destroy the webhook's signing secrets, the previous one of a rotation too."""

    def sealed(self, name: str) -> bytes | None:
        """A named secret of the installation itself (e.g. the gateway's token-signing key)."""

    def put_sealed(self, name: str, value: bytes) -> None:
        """Keep ``value`` unless one is already there (first writer wins)."""

    def replace_sealed(self, name: str, value: bytes) -> None: ...

    def pending_pickups(self) -> set[str]: ...

    def take_pickup(self, partner: str, *, now: datetime, token_endpoint: str) -> Pickup | None:
        """Unseal and destroy the partner's pickup; None (and a refusal event) when there is none.

        ``token_endpoint`` goes into a wrapped delivery document, which is all the Tech Lead receives."""

    def events_after(self, cursor: int) -> list[OutboxEvent]: ...

    def version(self) -> str | None:
        """Changes whenever credentials or webhook secrets change, by partnerctl or by hand; None if unknowable."""

    def forget(self) -> None:
        """Drop what this process remembers of the store: a change was announced elsewhere (a revocation)."""

    def close(self) -> None: ...
