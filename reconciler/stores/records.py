"""The records the stores keep: a partner's applied state, its webhooks, audit events, outbox rows, pickups.

Plain dataclasses that serialise to JSON, so any backend (SQLite, a Kubernetes custom resource,
PostgreSQL) holds them without knowing what they mean. Times are ISO 8601 strings in UTC.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any

from reconciler.vocabulary import DeliveryStatus, Event, Health, Phase, WebhookState

__all__ = [
    "GENESIS_HASH",
    "AuditEvent",
    "AuditHead",
    "DeliveryAttempt",
    "DeliveryRow",
    "OutboxEvent",
    "PartnerRecord",
    "Pickup",
    "ScopeUse",
    "StoredEvent",
    "WebhookRecord",
]

GENESIS_HASH = "0" * 64


@dataclass
class WebhookRecord:
    """A registered webhook and how its endpoint has been answering (LOG-01)."""

    name: str
    url: str
    events: list[str]
    mapping: str | None = None
    state: WebhookState = WebhookState.ACTIVE
    consecutive_failures: int = 0
    last_error: str | None = None
    registered_at: str | None = None

    def same_target(self, other: WebhookRecord) -> bool:
        return (self.url, sorted(self.events), self.mapping) == (other.url, sorted(other.events), other.mapping)


@dataclass
class PartnerRecord:
    """Everything applied for one partner."""

    key: str
    phase: Phase
    health: Health = Health.UNKNOWN
    spec: dict[str, Any] = field(default_factory=dict)
    blob: str | None = None  # git blob of the applied manifest
    context: str | None = None  # catalog and tenant policy blobs it was checked against
    revision: str | None = None
    approval: dict[str, Any] | None = None
    suspended: bool = False
    rotation_days: int = 90
    overlap_days: int = 7
    legal_expires_on: str | None = None
    webhooks: dict[str, WebhookRecord] = field(default_factory=dict)
    conditions: list[dict[str, Any]] = field(default_factory=list)
    registered_at: str | None = None
    updated_at: str | None = None
    max_failures: int = 5  # LOG-01, from the tenant policy
    on_failure: str = "deactivate"
    requests_per_minute: int = 600  # the gateway's rate limit (token bucket), from the tenant policy's gateway
    burst: int = 100
    handshake_at: str | None = None
    last_successful_sync: str | None = None
    last_check_at: str | None = None
    # private_key_jwt: each key id in use (the manifest's jwks, or seen at its jwksUri) and when it was first seen
    keys_first_seen: dict[str, str] = field(default_factory=dict)
    # Access reviews (DESIGN §12), from the tenant policy's accessReview: the last approved review of the
    # manifest, and since when an overdue review has been audited (once) and shown.
    reviewed_at: str | None = None
    review_days: int = 90
    on_overdue: str = "flag"
    unused_scope_days: int = 90
    review_overdue_since: str | None = None

    @property
    def tenant(self) -> str:
        return self.key.split("/", 1)[0]

    @property
    def decommissioned(self) -> bool:
        return self.phase == Phase.DECOMMISSIONED

    @property
    def usable(self) -> bool:
        """Whether the partner may get tokens, call the API and receive webhooks right now."""
        return not self.suspended and self.phase not in (Phase.DECOMMISSIONED, Phase.PENDING_APPROVAL)

    @property
    def scopes(self) -> list[str]:
        """The approved scopes, as applied."""
        return list(self.spec.get("scopes", []))

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> PartnerRecord:
        webhooks = {
            name: WebhookRecord(**{**hook, "state": WebhookState(hook.get("state", WebhookState.ACTIVE))})
            for name, hook in data.get("webhooks", {}).items()
        }
        return cls(
            **{
                **data,
                "phase": Phase(data["phase"]),
                "health": Health(data.get("health", Health.UNKNOWN)),
                "webhooks": webhooks,
            }
        )


@dataclass(frozen=True)
class AuditHead:
    """The last committed audit entry: its sequence number and hash, where a file-backed log's committed
    part ends, and the last secret-store event copied into the log."""

    seq: int = 0
    hash: str = GENESIS_HASH
    offset: int = 0
    outbox_cursor: int = 0


@dataclass(frozen=True)
class AuditEvent:
    """An event to record. ``details`` must never hold a secret."""

    event: Event
    partner: str | None
    details: dict[str, Any]
    actor: str = "reconciler"
    time: datetime | None = None


@dataclass(frozen=True)
class OutboxEvent:
    """A credential event the secret store recorded with its change, on its way to the audit log."""

    id: int
    partner: str
    event: str
    details: dict[str, Any]
    time: str


@dataclass(frozen=True)
class Pickup:
    """What a Tech Lead picks up once: the client secret and webhook signing secrets not yet delivered.

    A Vault store hands out no plaintext: the secrets are response-wrapped, and ``wrap_token`` is the
    single-use token that unwraps them (within ``wrap_ttl`` seconds).
    """

    partner: str
    client_id: str
    client_secret: str | None
    webhook_secrets: dict[str, str] = field(default_factory=dict)
    wrap_token: str | None = None
    wrap_ttl: int | None = None


@dataclass(frozen=True)
class StoredEvent:
    """A platform event in the webhook outbox."""

    id: str
    type: str
    data: dict[str, Any]
    received_at: str


@dataclass(frozen=True)
class DeliveryRow:
    """One event's delivery to one webhook; ``message_id`` is its ``webhook-id`` for every retry."""

    id: int
    event_id: str
    partner: str
    webhook: str
    message_id: str
    status: DeliveryStatus
    attempts: int
    next_attempt_at: float
    last_status: int | None = None
    last_error: str | None = None


@dataclass(frozen=True)
class DeliveryAttempt:
    """One attempt in the delivery log (DESIGN §8): ids, type and outcome, never a payload field.

    ``status``: ``delivered`` (2xx), ``failed`` (any other answer, a timeout, a refused destination) or
    ``held`` (410 Gone: the webhook was deactivated). ``time`` is ISO 8601 in UTC."""

    message_id: str
    partner: str
    webhook: str
    event_type: str
    attempt: int
    time: str
    status: str
    http_status: int | None = None
    error: str | None = None
    latency_ms: int | None = None


@dataclass(frozen=True)
class ScopeUse:
    """How a partner used one scope at the gateway (DESIGN §12): counters, never a request log.

    ``last_used``: the last use (ISO 8601 UTC), or None when never used; ``days``: uses per day
    (``YYYY-MM-DD``, UTC) of the recent days a store keeps."""

    last_used: str | None
    days: dict[str, int] = field(default_factory=dict)
