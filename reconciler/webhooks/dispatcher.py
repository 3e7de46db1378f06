"""The webhook dispatcher: sends due deliveries from the outbox, retries, and watches endpoints (LOG-01).

Each pass takes the due deliveries, shapes and signs each payload, checks the destination again
(SSRF) and sends them with one pooled async httpx client, bounded overall and per endpoint. Results
are written back in one go under the installation lock, with the audit events they cause:

- 2xx: delivered; 410: the partner retired the endpoint, it is deactivated and its deliveries held;
- 429 or 503 with ``Retry-After``: retried then; other failures: retried on the schedule (with
  jitter), ``failed`` after the last attempt; redirects are never followed;
- 5xx, timeouts and unreachable endpoints count towards LOG-01 (failing, then flagged or
  deactivated); deliveries to a deactivated webhook are held and resume when a ping succeeds.
"""

from __future__ import annotations

import asyncio
import functools
import random
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import replace
from datetime import datetime
from email.utils import parsedate_to_datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx

from reconciler import clock
from reconciler.backends.sqlite.lock import installation_lock
from reconciler.engine.audit import AuditEvent, AuditLog
from reconciler.engine.executor import Executor
from reconciler.engine.status import deactivate, derive, webhook_result
from reconciler.manifests.urls import literal_address
from reconciler.stores.outbox import CANCELLED, DELIVERED, FAILED, HELD, PENDING, DeliveryRow, StoredEvent
from reconciler.stores.secrets import SecretStore
from reconciler.stores.state import PartnerRecord, StateStore
from reconciler.webhooks import sender as webhooks
from reconciler.webhooks.events import Shaper

# Seconds before attempt 1, 2, …: immediately, 5 s, 5 min, 30 min, 2 h, 5 h, 10 h, 10 h.
DEFAULT_SCHEDULE = (0, 5, 300, 1800, 7200, 18000, 36000, 36000)
MAX_RETRY_AFTER = 24 * 3600


def parse_schedule(text: str) -> tuple[int, ...]:
    """``0,5,300`` -> (0, 5, 300)."""
    values = tuple(int(part) for part in text.split(",") if part.strip())
    if not values or any(value < 0 for value in values):
        raise ValueError("a schedule is comma-separated seconds, e.g. 0,5,300,1800")
    return values


class Dispatcher:
    def __init__(
        self,
        *,
        state: StateStore,
        secrets: SecretStore,
        home: Path,
        allow_loopback: bool = False,
        schedule: tuple[int, ...] = DEFAULT_SCHEDULE,
        concurrency: int = 64,
        per_endpoint: int = 8,
        timeout: float = 15.0,
        batch: int = 500,
        on_results: Callable[[Counter[str]], None] | None = None,
    ) -> None:
        self.state, self.secrets, self.home = state, secrets, home
        self.audit = AuditLog(home / "audit.jsonl")
        self.allow_loopback = allow_loopback
        self.schedule = schedule
        self.concurrency, self.per_endpoint, self.timeout, self.batch = concurrency, per_endpoint, timeout, batch
        self.on_results = on_results  # e.g. metrics: how many deliveries ended in each status

    async def run_once(self) -> int:
        """One pass over the deliveries due now; how many were attempted."""
        due = self.state.due(clock.now().timestamp(), self.batch)
        if not due:
            return 0
        shaper = Shaper(self.state.setting("catalog") or {"spec": {"scopes": [], "events": []}})
        records: dict[str, PartnerRecord | None] = {}
        events: dict[str, StoredEvent] = self.state.events([row.event_id for row in due])
        secrets: dict[tuple[str, str], str | None] = {}
        overall = asyncio.Semaphore(self.concurrency)
        endpoints: dict[str, asyncio.Semaphore] = {}
        limits = httpx.Limits(max_connections=self.concurrency, max_keepalive_connections=self.concurrency)
        async with httpx.AsyncClient(timeout=self.timeout, follow_redirects=False, limits=limits) as client:

            async def attempt(row: DeliveryRow) -> tuple[DeliveryRow, webhooks.Delivery | str]:
                if row.partner not in records:
                    records[row.partner] = self.state.partner(row.partner)
                record = records[row.partner]
                hook = record.webhooks.get(row.webhook) if record is not None else None
                if record is None or hook is None or record.suspended or record.phase == "DECOMMISSIONED":
                    return row, CANCELLED
                if hook.state == "deactivated":
                    return row, HELD
                event = events.get(row.event_id)
                if (row.partner, row.webhook) not in secrets:
                    secrets[row.partner, row.webhook] = self.secrets.webhook_secret(row.partner, row.webhook)
                secret = secrets[row.partner, row.webhook]
                if event is None or secret is None:
                    return row, CANCELLED
                data = shaper.shape(record, row.webhook, event)
                endpoint = endpoints.setdefault(urlsplit(hook.url).netloc, asyncio.Semaphore(self.per_endpoint))
                async with overall, endpoint:
                    # Names are resolved (and checked) off the event loop; literal addresses need no lookup.
                    prepare = functools.partial(
                        webhooks.prepare, hook.url, event.type, data, secret=secret, message_id=row.message_id,
                        allow_loopback=self.allow_loopback,
                    )  # fmt: skip
                    literal = literal_address(urlsplit(hook.url).hostname or "") is not None
                    request = prepare() if literal else await asyncio.to_thread(prepare)
                    if isinstance(request, webhooks.Delivery):
                        return row, request
                    return row, await webhooks.send_async(request, client)

            outcomes = await asyncio.gather(*(attempt(row) for row in due))
        await asyncio.to_thread(self._record, outcomes)
        return len(due)

    def run(self, *, once: bool, interval: float, stop: Any = None, active: Callable[[], bool] | None = None) -> None:
        """Pass after pass; ``once``: until nothing is due now. ``stop``: a threading.Event to end the loop.
        ``active``: passes run only while it says so (the elected leader)."""
        while True:
            attempted = asyncio.run(self.run_once()) if active is None or active() else 0
            if once and attempted == 0:
                return
            if stop is not None and stop.is_set():
                return
            if attempted == 0:
                if stop is not None:
                    stop.wait(interval)
                else:
                    time.sleep(interval)

    # --- results ----------------------------------------------------------------------------------

    def _record(self, outcomes: list[tuple[DeliveryRow, webhooks.Delivery | str]]) -> None:
        now = clock.now()
        with installation_lock(self.home):
            records: dict[str, PartnerRecord] = {}
            dirty: set[str] = set()
            rows, audit, held = [], [], []
            for row, outcome in outcomes:
                if isinstance(outcome, str):  # not attempted: held or cancelled
                    rows.append(replace(row, status=outcome))
                    continue
                record = records.get(row.partner) or self.state.partner(row.partner)
                if record is None or row.webhook not in record.webhooks:
                    rows.append(replace(row, status=CANCELLED))
                    continue
                records[row.partner] = record
                hook = record.webhooks[row.webhook]
                rows.append(self._next(row, outcome, now))
                before = (hook.state, hook.consecutive_failures, record.last_successful_sync)
                if outcome.status == 410:
                    changes = deactivate(record, hook, "the endpoint answered 410 Gone")
                else:
                    counts = outcome.status is None or outcome.status >= 500
                    changes = webhook_result(record, hook, ok=outcome.ok, counts=counts, error=outcome.error, now=now)
                if hook.state == "deactivated":
                    held.append((row.partner, row.webhook))
                if (hook.state, hook.consecutive_failures) != before[:2] or _sync_stale(before[2], now):
                    dirty.add(row.partner)
                else:
                    record.last_successful_sync = before[2]  # recent enough: spare the write
                audit += [AuditEvent(event, row.partner, details, "dispatcher") for event, details in changes]
            self.state.record_attempts(rows)
            if self.on_results is not None:
                self.on_results(Counter(row.status for row in rows))
            for partner, webhook in set(held):
                self.state.hold(partner, webhook)
            changed = [records[key] for key in sorted(dirty)]
            held_secrets = self.secrets.webhook_secret_names() if changed else {}
            # One query for many partners, one each for a few.
            live = self.secrets.live_credentials() if len(changed) > 50 else {
                record.key: self.secrets.credentials(record.key) for record in changed
            }  # fmt: skip
            for record in changed:  # health follows the webhooks (DEGRADED while one fails)
                active = next((c for c in live.get(record.key, []) if c.state == "active"), None)
                derive(record, active, webhooks_held=held_secrets.get(record.key, set()), now=now)
            executor = Executor(self.state, self.secrets, self.audit, now=now, actor="dispatcher")
            executor.commit(changed, audit)

    def _next(self, row: DeliveryRow, outcome: webhooks.Delivery, now: datetime) -> DeliveryRow:
        attempts = row.attempts + 1
        if outcome.ok:
            return replace(row, status=DELIVERED, attempts=attempts, last_status=outcome.status, last_error=None)
        if outcome.status == 410:
            return replace(row, status=HELD, attempts=attempts, last_status=410, last_error=outcome.error)
        wait = _retry_after(outcome.retry_after, now) if outcome.status in (429, 503) else None
        if wait is None:
            if attempts >= len(self.schedule):
                return replace(row, status=FAILED, attempts=attempts, last_status=outcome.status,
                               last_error=outcome.error)  # fmt: skip
            wait = self.schedule[attempts] * random.uniform(0.9, 1.1)  # noqa: S311 - jitter, not security
        return replace(row, status=PENDING, attempts=attempts, next_attempt_at=now.timestamp() + wait,
                       last_status=outcome.status, last_error=outcome.error)  # fmt: skip


SYNC_WRITE_INTERVAL = 60.0


def _sync_stale(last: str | None, now: datetime) -> bool:
    """lastSuccessfulSync is written at most once a minute per partner."""
    return last is None or (now - datetime.fromisoformat(last)).total_seconds() >= SYNC_WRITE_INTERVAL


def _retry_after(value: str | None, now: datetime) -> float | None:
    """Seconds from a Retry-After header (delta-seconds or an HTTP date), capped; None when absent."""
    if not value:
        return None
    if value.strip().isdigit():
        return min(float(value), MAX_RETRY_AFTER)
    try:
        moment = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return min(max(0.0, (moment - now).total_seconds()), MAX_RETRY_AFTER)
