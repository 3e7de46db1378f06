"""The installation journal: the audit chain and its head, settings, the plan memo, the webhook outbox,
and what gateway replicas share (rate-limit buckets, keys seen once, revoked access tokens, scope usage).

What is not per partner lives here. Each concern is a small Protocol, so that a component depends
only on what it uses (the dispatcher on :class:`OutboxStore`, the planner on :class:`MemoStore`,
the gateway's limits on :class:`LimitStore`, its usage counters on :class:`UsageStore`); a backend keeping
all of them implements :class:`JournalStore`.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from reconciler.stores.records import (
    AuditEvent,
    AuditHead,
    DeliveryAttempt,
    DeliveryRow,
    PartnerRecord,
    ScopeUse,
    StoredEvent,
)

__all__ = [
    "USAGE_DAYS", "AuditStore", "Bucket", "JournalStore", "LimitStore", "MemoStore", "OutboxStore", "RevocationStore",
    "SettingsStore", "UsageStore",
]  # fmt: skip


class AuditStore(Protocol):
    """The hash-chained audit log (format: :mod:`reconciler.stores.audit`) and its committed head."""

    def audit_head(self) -> AuditHead: ...

    def record(
        self, events: list[AuditEvent], records: list[PartnerRecord], *, now: datetime, outbox_cursor: int | None
    ) -> AuditHead:
        """Append ``events`` to the chain and save ``records`` with them; move the secret-store cursor.

        All of it lands together where the backend keeps the records too; otherwise the head moves
        first, so a crash in between can repeat an audit entry but never lose one."""

    def recover(self) -> None:
        """Drop what a crashed writer appended past the committed head."""

    def audit_entries(self, after: int = 0) -> Iterator[Any]:
        """The log as stored, oldest first; a damaged entry is yielded as read (verification judges it).
        ``after``: only entries past that seq; a backend skips the earlier ones without decoding them
        (verification always reads the whole log)."""

    def exclusive(self, *, timeout: float | None = None) -> AbstractContextManager[None]:
        """Be the installation's only writer for a while; :class:`~reconciler.errors.Busy` after ``timeout``."""


class SettingsStore(Protocol):
    """Named documents the reconciler publishes for other processes (the applied scope catalog)."""

    def setting(self, name: str) -> Any: ...

    def put_setting(self, name: str, value: Any) -> None: ...


class MemoStore(Protocol):
    """Memoised results by key (a blob's validation, a plan with nothing to do)."""

    def cached(self, keys: list[str]) -> dict[str, Any]:
        """The memoised values of ``keys``; missing keys are absent."""

    def cache(self, entries: dict[str, Any]) -> None: ...


class OutboxStore(Protocol):
    """Published events and their deliveries (the durable webhook outbox)."""

    def enqueue(self, event: StoredEvent, deliveries: list[DeliveryRow]) -> None:
        """Store an event and its deliveries together; only then is the event acknowledged."""

    def due(self, now: float, limit: int, *, lease: float = 0.0, replaying: bool = False) -> list[DeliveryRow]:
        """Pending deliveries whose next attempt is due, oldest first (``replaying``: those of the replay lane
        instead). A store shared by several workers claims them: no other caller gets them for ``lease``
        seconds, unless their outcome is recorded."""

    def events(self, event_ids: list[str]) -> dict[str, StoredEvent]:
        """Several events by id, in one read (a dispatcher pass)."""

    def deliveries(self, event_id: str | None = None) -> list[DeliveryRow]: ...

    def record_attempts(self, rows: list[DeliveryRow]) -> None:
        """Write the new status, attempts, next attempt and last outcome of ``rows``."""

    def hold(self, partner: str, webhook: str) -> None:
        """Pending and replaying deliveries to a deactivated webhook wait (held), never dropped."""

    def release_held(self, partner: str, webhook: str, *, now: float) -> int:
        """Held deliveries go out again (a ping succeeded); returns how many."""

    def replay(
        self, partner: str, *, webhook: str | None, since: str, until: str, statuses: tuple[str, ...], now: float
    ) -> int:
        """Put the partner's deliveries (of ``webhook`` only, if given) in ``statuses`` whose event was received
        in [``since``, ``until``) (ISO 8601 UTC) into the replay lane, due at ``now`` with their attempts
        counted afresh; their ``message_id`` stays. How many, counted by the store (nothing is loaded)."""

    def log_attempts(self, attempts: list[DeliveryAttempt]) -> None:
        """Add attempts to the delivery log."""

    def attempts(
        self, partner: str, *, webhook: str | None = None, status: str | None = None, since: str | None = None,
        limit: int = 1000,
    ) -> list[DeliveryAttempt]:
        """The partner's logged attempts, newest first (``since``: an ISO 8601 time, inclusive)."""

    def prune_attempts(self, before: str) -> int:
        """Drop attempts logged before ``before`` (ISO 8601); how many."""

    def attempt_counts(self, since: str) -> dict[tuple[str, str], dict[str, int]]:
        """Logged attempts since ``since`` (ISO 8601), counted per (partner, webhook) and outcome status, in one
        read (the compliance report's delivery counts)."""

    def attempt_days(self, partner: str, since: str) -> dict[tuple[str, str, str], int]:
        """The partner's logged attempts since ``since`` (ISO 8601), counted per (webhook, UTC day YYYY-MM-DD,
        outcome status): the console's delivery chart."""


@dataclass(frozen=True)
class Bucket:
    """What a take left: how many tokens it took, and how many the bucket holds after it (a fraction refills)."""

    taken: int
    tokens: float


class LimitStore(Protocol):
    """Shared by every gateway replica: token buckets (rate limits) and keys that may be seen only once.

    A bucket named ``key`` holds at most ``burst`` tokens and refills at ``rate`` tokens a second; one never
    used is full. Times are seconds since the epoch, as the caller's clock gives them; a clock behind the
    bucket's last update refills nothing (time never runs backwards for a bucket)."""

    def take(self, key: str, *, count: int, rate: float, burst: float, now: float) -> Bucket:
        """Take up to ``count`` whole tokens (as many as the bucket holds, possibly none), atomically across
        every process sharing the store."""

    def level(self, key: str, *, rate: float, burst: float, now: float) -> float:
        """The tokens the bucket holds now, taking none (a read, no write)."""

    def remember_once(self, key: str, expires_at: float) -> bool:
        """True the first time ``key`` is seen before ``expires_at``, False when it is seen again (a replay),
        atomically across every process sharing the store. Expired keys (against partnerctl's clock, which
        ``PARTNERCTL_NOW`` sets in drills) are forgotten, and pruned."""


class RevocationStore(Protocol):
    """Access tokens revoked before they expire (RFC 7009), by ``jti``, kept until their ``exp``."""

    def revoke_token(self, jti: str, expires_at: float) -> bool:
        """Revoke the token ``jti`` until ``expires_at``; True unless it was revoked already."""

    def revoked_tokens(self, now: float) -> dict[str, float]:
        """Every token revoked and not yet expired at ``now``: jti -> expires_at."""

    def revocations_version(self) -> str | None:
        """Changes whenever a token is revoked, by any process; None if unknowable (then ask every time)."""


# How many recent days of use counts :meth:`UsageStore.scope_usage` gives at least (the last use is kept for good).
USAGE_DAYS = 90


class UsageStore(Protocol):
    """Uses of each partner's scopes at the gateway, per day, and the last use (DESIGN §12): counters that
    gateway replicas add to in batches, never a request log."""

    def count_uses(self, uses: dict[tuple[str, str, str], int], last: dict[tuple[str, str], str]) -> None:
        """Add ``uses`` (keyed partner "tenant/name", scope, day "YYYY-MM-DD") to the counts and move the last
        use of each (partner, scope) in ``last`` (ISO 8601 UTC) forward, never backward: one write transaction
        for the whole batch, safe beside other replicas writing at the same time."""

    def scope_usage(self, partners: list[str] | None = None) -> dict[str, dict[str, ScopeUse]]:
        """Per partner (of ``partners``, or all), per scope ever used: its last use and its uses per day of
        the last 90 days (at least), in one read."""

    def prune_usage(self, before_day: str) -> int:
        """Drop the day counts of days before ``before_day`` ("YYYY-MM-DD"); the last uses stay. How many."""


class JournalStore(
    AuditStore, SettingsStore, MemoStore, OutboxStore, LimitStore, RevocationStore, UsageStore, Protocol
):
    """Everything an installation keeps besides partner records and secrets."""

    def close(self) -> None: ...
