"""Live state: what the reconciler has applied per partner, and the audit chain's committed head.

The interface is :class:`StateStore`; backends live in ``reconciler/backends/``. Records are plain
dataclasses that serialise to JSON, so any backend (SQLite, a Kubernetes custom resource) can hold
them without knowing what they mean.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from reconciler.stores.outbox import DeliveryRow, StoredEvent

if TYPE_CHECKING:
    from reconciler.engine.audit import AuditEvent

GENESIS_HASH = "0" * 64


@dataclass
class WebhookRecord:
    """A registered webhook and how its endpoint has been answering (LOG-01)."""

    name: str
    url: str
    events: list[str]
    mapping: str | None = None
    state: str = "active"  # active | failing | flagged | deactivated
    consecutive_failures: int = 0
    last_error: str | None = None
    registered_at: str | None = None

    def same_target(self, other: WebhookRecord) -> bool:
        return (self.url, sorted(self.events), self.mapping) == (other.url, sorted(other.events), other.mapping)


@dataclass
class PartnerRecord:
    """Everything applied for one partner. Times are ISO 8601 strings in UTC."""

    key: str
    phase: str
    health: str = "UNKNOWN"
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
    handshake_at: str | None = None
    last_successful_sync: str | None = None
    last_check_at: str | None = None

    @property
    def tenant(self) -> str:
        return self.key.split("/", 1)[0]

    @property
    def decommissioned(self) -> bool:
        return self.phase == "DECOMMISSIONED"

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> PartnerRecord:
        webhooks = {name: WebhookRecord(**hook) for name, hook in data.get("webhooks", {}).items()}
        return cls(**{**data, "webhooks": webhooks})


@dataclass(frozen=True)
class AuditHead:
    """The last committed audit entry: its sequence number, hash and the log's size after it."""

    seq: int = 0
    hash: str = GENESIS_HASH
    offset: int = 0
    outbox_cursor: int = 0  # last secret-store event copied into the audit log


class StateStore(Protocol):
    """Where live state is kept. Writes are atomic per :meth:`commit` call."""

    def partners(self) -> dict[str, PartnerRecord]:
        """Every partner record, decommissioned ones included."""

    def partner(self, key: str) -> PartnerRecord | None: ...

    def audit_head(self) -> AuditHead: ...

    def commit(self, records: list[PartnerRecord], head: AuditHead | None = None) -> None:
        """Write ``records`` and move the audit head, all or nothing."""

    def version(self) -> str | None:
        """Changes whenever partner records change, by partnerctl or by hand; None if unknowable."""

    def setting(self, name: str) -> Any:
        """A named document the reconciler publishes for other processes (e.g. the applied catalog)."""

    def put_setting(self, name: str, value: Any) -> None: ...

    def cached(self, keys: list[str]) -> dict[str, Any]:
        """Memoised results (e.g. validation of a blob) by key; missing keys are absent."""

    def cache(self, entries: dict[str, Any]) -> None: ...

    # --- the webhook outbox (reconciler/outbox.py) ---

    def enqueue(self, event: StoredEvent, deliveries: list[DeliveryRow]) -> None:
        """Store an event and its deliveries together; only then is the event acknowledged."""

    def due(self, now: float, limit: int) -> list[DeliveryRow]:
        """Pending deliveries whose next attempt is due, oldest first."""

    def events(self, event_ids: list[str]) -> dict[str, StoredEvent]:
        """Several events by id, in one read (a dispatcher pass)."""

    def deliveries(self, event_id: str | None = None) -> list[DeliveryRow]: ...

    def record_attempts(self, rows: list[DeliveryRow]) -> None:
        """Write the new status, attempts, next attempt and last outcome of ``rows``."""

    def hold(self, partner: str, webhook: str) -> None:
        """Pending deliveries to a deactivated webhook wait (held), never dropped."""

    def release_held(self, partner: str, webhook: str, *, now: float) -> int:
        """Held deliveries go out again (a ping succeeded); returns how many."""

    def announce(self, entries: list[AuditEvent]) -> None:
        """Tell the platform's own event stream about audited events (Kubernetes Events); may do nothing."""

    def close(self) -> None: ...
