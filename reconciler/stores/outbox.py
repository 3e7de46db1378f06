"""Platform events and their deliveries, as the state store keeps them (the durable outbox).

An event is stored together with one delivery per subscribed webhook before it is acknowledged, so a
crash loses nothing; each delivery keeps its ``webhook-id`` for every retry, so partners can
de-duplicate (delivery is at least once).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

PENDING, DELIVERED, FAILED, HELD, CANCELLED = "pending", "delivered", "failed", "held", "cancelled"


@dataclass(frozen=True)
class StoredEvent:
    id: str
    type: str
    data: dict[str, Any]
    received_at: str


@dataclass(frozen=True)
class DeliveryRow:
    id: int
    event_id: str
    partner: str
    webhook: str
    message_id: str
    status: str
    attempts: int
    next_attempt_at: float
    last_status: int | None = None
    last_error: str | None = None
